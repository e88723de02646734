//! The `chronos` binary: the node daemon and its client.

use chronos::client::{self, Access, AccessArgs, Client, Consistency, Format, OfflineQueue, Session};
use chronos::config::{Config, Overrides};
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

// sled allocates heavily; mimalloc makes writes and scans 10-15% faster than
// the system allocator (see the benchmarks in the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "chronos",
    version,
    about = "ChronosDB: a small distributed SQL database for edge gateways"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (with no flags: a single node in ./data/node1 on 127.0.0.1:8000).
    Node {
        #[command(flatten)]
        node: NodeArgs,
        /// Other cluster members: id=host:port,...
        #[arg(long, value_delimiter = ',')]
        peers: Option<Vec<String>>,
        /// Join a running cluster through this member (host:port) on first start.
        #[arg(long, value_name = "HOST:PORT")]
        join: Option<String>,
        /// If this node's data files are damaged, move them aside
        /// (<id>.damaged-<time>) and rebuild from the other members instead
        /// of refusing to start. Without damage it does nothing.
        #[arg(long)]
        rebuild_from_peers: bool,
    },
    /// Show or change the cluster's membership.
    Cluster {
        #[command(flatten)]
        access: AccessArgs,
        /// Any member of the cluster.
        #[arg(long, default_value = "127.0.0.1:8000", env = "CHRONOS_LEADER", global = true)]
        leader: String,
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Open a SQL shell, or run SQL given with -e or on standard input.
    Client {
        #[command(flatten)]
        access: AccessArgs,
        /// The node to talk to.
        #[arg(long, default_value = "127.0.0.1:8000", env = "CHRONOS_LEADER")]
        leader: String,
        /// Run these statements and exit.
        #[arg(long, short = 'e')]
        execute: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Read consistency for queries.
        #[arg(long, value_enum, default_value_t = Consistency::Strong)]
        consistency: Consistency,
        /// Keep writes in this directory while no node answers, and replay
        /// them in order (each exactly once) when one does.
        #[arg(long, value_name = "DIR", env = "CHRONOS_OFFLINE_QUEUE")]
        offline_queue: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<ClientAction>,
    },
    /// Site-to-upstream sync.
    Sync {
        #[command(flatten)]
        access: AccessArgs,
        /// The node to ask.
        #[arg(long, default_value = "127.0.0.1:8000", env = "CHRONOS_LEADER", global = true)]
        leader: String,
        #[command(subcommand)]
        action: SyncAction,
    },
    /// Load a running node or cluster and report throughput and latency.
    Bench {
        #[command(flatten)]
        access: AccessArgs,
        /// Node(s) to load, comma-separated; clients are spread over them.
        #[arg(
            long,
            default_value = "127.0.0.1:8000",
            env = "CHRONOS_LEADER",
            value_delimiter = ','
        )]
        leader: Vec<String>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Seconds to run (ignored with --count).
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Total operations to run, instead of a duration.
        #[arg(long)]
        count: Option<u64>,
        /// Rows per INSERT.
        #[arg(long, default_value_t = 1)]
        rows: usize,
        /// Fraction of operations that are primary-key SELECTs (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        read_ratio: f64,
        #[arg(long, value_enum, default_value_t = Consistency::Strong)]
        consistency: Consistency,
        /// The table written and read (created if missing).
        #[arg(long, default_value = "bench")]
        table: String,
        /// Send writes queued (acknowledged once queued on the node), then
        /// wait until all are committed.
        #[arg(long)]
        queued: bool,
    },
    /// Take a consistent backup of a live node's data into FILE.
    Backup {
        #[command(flatten)]
        access: AccessArgs,
        /// The node to back up.
        #[arg(long, default_value = "127.0.0.1:8000", env = "CHRONOS_LEADER")]
        leader: String,
        /// Where to write the backup.
        file: PathBuf,
    },
    /// Fill an empty data directory from a backup; the node started on it
    /// forms a new cluster around the data (add members with --join).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Directory holding node directories.
        #[arg(long)]
        data_dir: PathBuf,
        /// The id of the node that will use it.
        #[arg(long, default_value = "node1")]
        id: String,
    },
    /// Follow the change feed: one JSON line per committed row change.
    Changes {
        #[command(flatten)]
        access: AccessArgs,
        /// The node to follow (any member).
        #[arg(long, default_value = "127.0.0.1:8000", env = "CHRONOS_LEADER")]
        leader: String,
        /// The first Raft index wanted (0: the oldest kept). To resume,
        /// give the index of the last change handled and skip the
        /// (index, seq) pairs already seen.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Only this table's changes (repeatable; all tables by default).
        #[arg(long = "table")]
        tables: Vec<String>,
        /// Exit once caught up instead of following new changes.
        #[arg(long)]
        no_follow: bool,
    },
    /// Bring back a cluster that lost its majority: run on its most
    /// up-to-date survivor, stopped. It becomes the only voter, keeping
    /// everything in its log; start it, then add members with --join.
    Recover {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Make the cluster's certificate authority and the certificates it
    /// signs (docs/security.md).
    Certs {
        #[command(subcommand)]
        action: CertsAction,
    },
    /// Read a password on standard input and print its argon2 hash, for
    /// `password_hash` in a `[[users]]` entry.
    HashPassword,
    /// Print the version.
    Version,
}

/// Which node: its config file and the flags that override it.
#[derive(clap::Args)]
struct NodeArgs {
    /// Config file (TOML); see config/chronos.toml for every key.
    #[arg(long, short = 'c', env = "CHRONOS_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id; its files live in <data-dir>/<id>.
    #[arg(long)]
    id: Option<String>,
    /// Directory holding node directories.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// host:port for the client API.
    #[arg(long)]
    address: Option<String>,
}

impl NodeArgs {
    /// The layered configuration, or the exit status after saying why not.
    fn load(self, peers: Option<Vec<String>>, join: Option<String>) -> Result<Config, ExitCode> {
        let overrides = Overrides {
            id: self.id,
            data_dir: self.data_dir,
            address: self.address,
            peers,
            join,
        };
        Config::load(self.config.as_deref(), &overrides).map_err(|e| {
            eprintln!("chronos: {e}");
            ExitCode::from(2)
        })
    }
}

#[derive(Subcommand)]
enum CertsAction {
    /// Create ca.pem and ca.key in DIR (refuses to replace them).
    Init {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
    /// Sign a node's or a user's certificate: DIR/NAME.pem and DIR/NAME.key.
    Issue {
        /// node (peers and servers) or client (a user logging in).
        #[arg(value_enum)]
        kind: CertKindArg,
        /// The node's id, or the user's name.
        name: String,
        /// Host names and IP addresses the node is reached at (repeatable;
        /// default: NAME, localhost and 127.0.0.1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CertKindArg {
    Node,
    Client,
}

#[derive(Subcommand)]
enum ClientAction {
    /// The offline queue (needs --offline-queue).
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// How many writes wait, and the first few.
    Status,
    /// Replay the waiting writes now.
    Flush,
    /// Drop every waiting write (they will never be applied).
    Clear,
}

#[derive(Subcommand)]
enum SyncAction {
    /// The node's sync role, upstream reachability, last sync, rows waiting,
    /// cursors and conflicts resolved.
    Status,
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Members, their addresses and roles, the leader, terms and log positions.
    Status,
    /// Add a node (started with --join, or with an empty data directory).
    Add {
        /// The new member's id.
        id: String,
        /// Its host:port.
        address: String,
        /// Add it as a non-voting learner (a read replica).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member.
    Remove {
        /// The member's id.
        id: String,
    },
}

impl Command {
    /// The TLS and login flags of a client command.
    fn access_args(&self) -> Option<&AccessArgs> {
        match self {
            Command::Cluster { access, .. }
            | Command::Client { access, .. }
            | Command::Sync { access, .. }
            | Command::Bench { access, .. }
            | Command::Backup { access, .. }
            | Command::Changes { access, .. } => Some(access),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let access = match cli.command.access_args().map(Access::from_args).transpose() {
        Ok(a) => a.unwrap_or_default(),
        Err(e) => {
            eprintln!("chronos: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Node {
            node,
            peers,
            join,
            rebuild_from_peers,
        } => {
            chronos::daemon::commit_memory_lazily();
            let config = match node.load(peers, join) {
                Ok(c) => c,
                Err(code) => return code,
            };
            chronos::daemon::init_logging(&config);
            match chronos::daemon::run(config, chronos::daemon::StartOptions { rebuild_from_peers }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("chronos: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Client {
            leader,
            execute,
            format,
            consistency,
            offline_queue,
            action,
            ..
        } => match action {
            None => run_client(&leader, &access, execute, format, consistency, offline_queue),
            Some(ClientAction::Queue { action }) => run_queue(&leader, &access, offline_queue, action),
        },
        Command::Sync {
            leader,
            action: SyncAction::Status,
            ..
        } => run_sync_status(&leader, &access),
        Command::Cluster { leader, action, .. } => run_cluster(&leader, &access, action),
        Command::Changes {
            leader,
            from,
            tables,
            no_follow,
            ..
        } => run_changes(&leader, &access, from, &tables, !no_follow),
        Command::Backup { leader, file, .. } => run_backup(&leader, &access, &file),
        Command::Restore { file, data_dir, id } => match chronos::daemon::restore(&file, &data_dir, &id) {
            Ok(records) => {
                println!(
                    "restored {records} records into {}; start it with: chronos node --id {id} --data-dir {}",
                    data_dir.join(&id).display(),
                    data_dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ERROR: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Bench {
            leader,
            clients,
            duration,
            count,
            rows,
            read_ratio,
            consistency,
            table,
            queued,
            ..
        } => {
            if clients == 0 || rows == 0 || !(0.0..=1.0).contains(&read_ratio) || leader.is_empty() {
                eprintln!("chronos: --clients and --rows must be at least 1, --read-ratio between 0 and 1");
                return ExitCode::from(2);
            }
            let options = client::bench::BenchOptions {
                addresses: leader,
                clients,
                duration: std::time::Duration::from_secs(duration),
                count,
                rows,
                read_ratio,
                consistency,
                table,
                queued,
                access,
            };
            run_bench(options)
        }
        Command::Certs { action } => run_certs(action),
        Command::Recover { node } => run_recover(node),
        Command::HashPassword => run_hash_password(),
        Command::Version => {
            println!("chronos {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn run_recover(node: NodeArgs) -> ExitCode {
    let config = match node.load(None, None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match chronos::daemon::recover(&config) {
        Ok(done) => {
            println!(
                "{} is now the only voter of its cluster (term {}, log kept up to index {}).\n\
                 Start it (its stored membership is used; peers in its config are ignored),\n\
                 then add members with an empty data directory and `chronos node --join {}`.",
                config.id,
                done.term,
                done.last_index,
                config.advertised()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_certs(action: CertsAction) -> ExitCode {
    use chronos::security::certs::{self, CertKind};
    let made = match action {
        CertsAction::Init { dir } => certs::init(&dir),
        CertsAction::Issue { kind, name, hosts, dir } => {
            let kind = match kind {
                CertKindArg::Node => CertKind::Node,
                CertKindArg::Client => CertKind::Client,
            };
            certs::issue(&dir, kind, &name, &hosts)
        }
    };
    match made {
        Ok(paths) => {
            for path in paths {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_hash_password() -> ExitCode {
    if std::io::stdin().is_terminal() {
        eprintln!("password (shown as typed; or pipe it in):");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("ERROR: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("ERROR: the password is empty");
        return ExitCode::from(2);
    }
    match chronos::security::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_backup(address: &str, access: &Access, file: &std::path::Path) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    // Written beside the target and renamed at the end: a failed backup
    // never leaves a truncated file under the name asked for.
    let partial = file.with_extension("partial");
    let result = runtime.block_on(async {
        let mut client = Client::connect_with(address, access).await?;
        let out = std::fs::File::create(&partial)
            .map_err(|e| client::ClientError::Status(format!("cannot create {}: {e}", partial.display())))?;
        let mut out = std::io::BufWriter::new(out);
        let terminal = std::io::stderr().is_terminal();
        let bytes = client
            .backup(&mut out, |done, total| {
                if terminal && total > 0 {
                    let width = 40;
                    let filled = (done * width / total) as usize;
                    eprint!(
                        "\r[{}{}] {:>5.1}% {} / {} MiB",
                        "#".repeat(filled),
                        " ".repeat(width as usize - filled),
                        done as f64 * 100.0 / total as f64,
                        done >> 20,
                        total >> 20
                    );
                }
            })
            .await?;
        if terminal {
            eprintln!();
        }
        let file_handle = out
            .into_inner()
            .map_err(|e| client::ClientError::Status(format!("cannot write the backup: {e}")))?;
        file_handle
            .sync_all()
            .map_err(|e| client::ClientError::Status(format!("cannot write the backup: {e}")))?;
        Ok::<u64, client::ClientError>(bytes)
    });
    match result.and_then(|bytes| {
        std::fs::rename(&partial, file)
            .map(|_| bytes)
            .map_err(|e| client::ClientError::Status(format!("cannot write {}: {e}", file.display())))
    }) {
        Ok(bytes) => {
            println!("backup of {address}: {bytes} bytes written to {}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_bench(options: client::bench::BenchOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chronos: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match runtime.block_on(client::bench::run(options, &mut out, &mut err)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_cluster(address: &str, access: &Access, action: ClusterAction) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let mut client = Client::connect_with(address, access).await?;
        match action {
            ClusterAction::Status => client.cluster_status().await,
            ClusterAction::Add { id, address, learner } => client.add_member(&id, &address, learner).await,
            ClusterAction::Remove { id } => client.remove_member(&id).await,
        }
    });
    match result {
        Ok(status) => {
            print!("{}", client::format_cluster_status(&status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_changes(address: &str, access: &Access, from: u64, tables: &[String], follow: bool) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let mut feed = client::changes::Subscription::open(address, access, from, tables, follow).await?;
        while let Some(event) = feed.next().await? {
            println!("{}", event.to_json());
        }
        Ok::<(), client::ClientError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

fn current_thread_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("chronos: cannot start: {e}");
            None
        }
    }
}

fn run_client(
    leader: &str,
    access: &Access,
    execute: Option<String>,
    format: Format,
    consistency: Consistency,
    offline_queue: Option<PathBuf>,
) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let queue = match offline_queue.as_deref().map(OfflineQueue::open).transpose() {
        Ok(q) => q,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::FAILURE;
        }
    };
    // With a queue the client starts even while no node answers.
    let connecting = match queue.is_some() {
        true => runtime.block_on(Client::connect_lazy(leader, access)),
        false => runtime.block_on(Client::connect_with(leader, access)),
    };
    let mut client = match connecting {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::FAILURE;
        }
    };
    if queue.is_some() {
        // Give up quickly and queue, rather than wait out a long outage.
        client.retry_for = std::time::Duration::from_secs(1);
    }
    client.consistency = consistency;
    let mut session = Session::new(client, format);
    if let Some(queue) = queue {
        session = session.with_queue(queue);
    }
    let script = match execute {
        Some(sql) => sql,
        None if std::io::stdin().is_terminal() => {
            return match client::repl::run(&runtime, &mut session, leader) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chronos: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        None => {
            let mut sql = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut sql) {
                eprintln!("ERROR: cannot read standard input: {e}");
                return ExitCode::FAILURE;
            }
            sql
        }
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let ran = runtime.block_on(session.run(&script, &mut out, &mut err));
    let finished = session.finish();
    if let Err(e) = &finished {
        eprintln!("ERROR: {e}");
    }
    match (ran, finished) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn run_queue(leader: &str, access: &Access, path: Option<PathBuf>, action: QueueAction) -> ExitCode {
    let Some(path) = path else {
        eprintln!("ERROR: name the queue with --offline-queue DIR (or CHRONOS_OFFLINE_QUEUE)");
        return ExitCode::from(2);
    };
    let queue = match OfflineQueue::open(&path) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::FAILURE;
        }
    };
    match action {
        QueueAction::Status => match queue.pending() {
            Ok(pending) => {
                println!(
                    "{} statements pending in {} (client id {})",
                    pending.len(),
                    path.display(),
                    queue.client_id()
                );
                for (sequence, sql) in pending.iter().take(10) {
                    println!("  {sequence}: {}", sql.trim());
                }
                if pending.len() > 10 {
                    println!("  ...");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ERROR: {e}");
                ExitCode::FAILURE
            }
        },
        QueueAction::Clear => match queue.clear() {
            Ok(n) => {
                println!("dropped {n} queued statements");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ERROR: {e}");
                ExitCode::FAILURE
            }
        },
        QueueAction::Flush => {
            let Some(runtime) = current_thread_runtime() else {
                return ExitCode::FAILURE;
            };
            let replayed = runtime.block_on(async {
                let mut client = Client::connect_lazy(leader, access).await.map_err(|e| e.to_string())?;
                client.retry_for = std::time::Duration::from_secs(1);
                let mut session = Session::new(client, Format::Table).with_queue(queue);
                session.replay(&mut std::io::stdout()).await.map_err(|e| e.to_string())
            });
            match replayed {
                Ok(r) => {
                    println!(
                        "replayed {} statements ({} failed); {} still pending",
                        r.sent, r.failed, r.pending
                    );
                    match r.pending {
                        0 => ExitCode::SUCCESS,
                        _ => {
                            eprintln!("ERROR: no node at {leader} answers; the rest stays queued");
                            ExitCode::FAILURE
                        }
                    }
                }
                Err(e) => {
                    eprintln!("ERROR: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run_sync_status(leader: &str, access: &Access) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(client::sync_status(leader, access)) {
        Ok(status) => {
            print!("{}", client::format_sync_status(&status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}
