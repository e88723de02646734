//! The configuration as a user writes it: layering, and what is refused.

use super::*;
use std::io::Write;
use std::path::Path;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_give_a_single_node() {
    let c = Config::load(None, &Overrides::default()).unwrap();
    assert_eq!(c.node_dir(), PathBuf::from("./data/node1"));
    assert_eq!(c.address, "127.0.0.1:8000");
}

#[test]
fn log_levels_are_levels_or_target_lists() {
    let load = |level: &str| {
        Config::load(
            Some(file(&format!("log_level = \"{level}\"\n")).path()),
            &Overrides::default(),
        )
    };
    assert!(load("warn").is_ok());
    assert!(load("info,chronos::raft=debug,openraft=error").is_ok());
    let e = load("loud").unwrap_err().to_string();
    assert!(e.contains("key 'log_level': 'loud'"), "{e}");
}

#[test]
fn a_witness_posts_no_changes_and_does_not_sync() {
    let load = |text: &str| Config::load(Some(file(text).path()), &Overrides::default());
    let peers = "peers = [\"a=127.0.0.1:9001\", \"b=127.0.0.1:9002\"]\n";
    let plain = load(&format!("role = \"witness\"\n{peers}"));
    assert!(plain.is_ok(), "{plain:?}");
    for extra in [
        "[changes]\nwebhook_url = \"http://10.0.0.1:9000/x\"\n",
        "[sync]\nsite_id = \"s1\"\nupstream = \"10.0.0.1:8000\"\ntables = { readings = \"push\" }\n",
    ] {
        let e = load(&format!("role = \"witness\"\n{peers}{extra}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a witness holds no data"), "{extra}: {e}");
    }
}

#[test]
fn flags_beat_the_file() {
    let f = file("id = \"gw7\"\naddress = \"127.0.0.1:9000\"\n");
    let flags = Overrides {
        address: Some("127.0.0.1:9100".into()),
        ..Overrides::default()
    };
    let c = Config::load(Some(f.path()), &flags).unwrap();
    assert_eq!((c.id.as_str(), c.address.as_str()), ("gw7", "127.0.0.1:9100"));
}

#[test]
fn errors_name_the_key() {
    let f = file("max_request_bytes = \"lots\"\n");
    let e = Config::load(Some(f.path()), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_request_bytes"), "{e}");
    let f = file("adress = \"x\"\n");
    let e = Config::load(Some(f.path()), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("adress"), "{e}");
    let flags = Overrides {
        peers: Some(vec!["node2".into()]),
        ..Overrides::default()
    };
    let e = Config::load(None, &flags).unwrap_err().to_string();
    assert!(e.contains("peers"), "{e}");
    let e = Config::load(Some(Path::new("/nonexistent/chronos.toml")), &Overrides::default()).unwrap_err();
    assert!(e.to_string().contains("no such file"));
}

#[test]
fn tls_and_users_are_checked() {
    let e = Config::load(Some(file("[tls]\ncert = \"n.pem\"\n").path()), &Overrides::default()).unwrap_err();
    assert!(e.to_string().contains("set all of cert, key and ca"), "{e}");
    let user = "[[users]]\nname = \"app\"\nrole = \"write\"\npassword_hash = \"x\"\n";
    let e = Config::load(Some(file(user).path()), &Overrides::default()).unwrap_err();
    assert!(e.to_string().contains("needs [tls]"), "{e}");
    let tls = "[tls]\ncert = \"n.pem\"\nkey = \"n.key\"\nca = \"ca.pem\"\n";
    let e = Config::load(Some(file(&format!("{tls}{user}")).path()), &Overrides::default()).unwrap_err();
    assert!(
        e.to_string().contains("password_hash of 'app' is not an argon2 hash"),
        "{e}"
    );
    let e = Config::load(
        Some(file(&format!("{tls}[[users]]\nname = \"a\"\nrole = \"boss\"\n")).path()),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("boss"), "{e}");
    let config = Config::load(
        Some(file(&format!("{tls}[[users]]\nname = \"a\"\nrole = \"read\"\n")).path()),
        &Overrides::default(),
    )
    .expect("valid");
    assert_eq!(config.users[0].role, Role::Read);
}

#[test]
fn the_sync_section_is_read_and_checked() {
    let f = file(
        "[sync]\nsite_id = \"plant-7\"\nupstream = \"hq:8000\"\ntables = { readings = \"push\", assets = \"both\" }\n",
    );
    let c = Config::load(Some(f.path()), &Overrides::default()).unwrap();
    assert_eq!(c.sync.tables.get("readings"), Some(&Direction::Push));
    assert!(c.sync.tables["assets"].pulls() && c.sync.tables["assets"].pushes());
    let refused = |text: &str| {
        Config::load(Some(file(text).path()), &Overrides::default())
            .unwrap_err()
            .to_string()
    };
    let e = refused("[sync]\nupstream = \"hq:8000\"\ntables = { t = \"push\" }\n");
    assert!(e.contains("sync.site_id"), "{e}");
    let e = refused("[sync]\nsite_id = \"a\"\nupstream = \"hq:8000\"\n");
    assert!(e.contains("sync.tables"), "{e}");
    let e = refused("[sync]\nsite_id = \"a\"\nupstream = \"hq:8000\"\ntables = { t = \"sideways\" }\n");
    assert!(e.contains("sideways"), "{e}");
    let e = refused("[sync]\nsite_id = \"a b\"\n");
    assert!(e.contains("sync.site_id"), "{e}");
    let e = refused("[sync]\nbatch_size = 0\n");
    assert!(e.contains("sync.batch_size"), "{e}");
    let e = refused("[sync]\nupstrem = \"x:1\"\n");
    assert!(e.contains("upstrem"), "{e}");
}
