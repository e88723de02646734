//! The `chronos` binary: the node daemon and its client.

//! Only the command line lives here; each command's body is in the module
//! it belongs to (client::commands, daemon::commands, security::commands).

use chronos::client::commands::{self, ClusterChange};
use chronos::client::{self, Access, AccessArgs, Consistency, Format};
use chronos::config::{Config, Overrides};
use chronos::daemon;
use chronos::security::{self, certs::CertKind};
use clap::{Parser, Subcommand};
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

/// mimalloc's option must be set before the first allocation reserves an
/// arena, and the Rust runtime allocates before `main` (the main thread's
/// handle): so it is set from the executable's initialisers, which run
/// before any Rust code (src/daemon/allocator.rs). Measured: set at the
/// top of `main` instead, an idle node stayed at 54 MiB, as without it.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static COMMIT_MEMORY_LAZILY: extern "C" fn() = {
    extern "C" fn before_main() {
        chronos::daemon::commit_memory_lazily();
    }
    before_main
};

fn main() -> ExitCode {
    #[cfg(not(target_os = "linux"))]
    chronos::daemon::commit_memory_lazily();
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
        } => match node.load(peers, join) {
            Ok(config) => daemon::commands::node(config, daemon::StartOptions { rebuild_from_peers }),
            Err(code) => code,
        },
        Command::Client {
            leader,
            execute,
            format,
            consistency,
            offline_queue,
            action,
            ..
        } => {
            let queue = offline_queue.as_deref();
            match action {
                None => commands::shell(&leader, &access, execute, format, consistency, offline_queue),
                Some(ClientAction::Queue { action }) => match action {
                    QueueAction::Status => commands::queue_status(queue),
                    QueueAction::Flush => commands::queue_flush(&leader, &access, queue),
                    QueueAction::Clear => commands::queue_clear(queue),
                },
            }
        }
        Command::Sync {
            leader,
            action: SyncAction::Status,
            ..
        } => commands::sync_status(&leader, &access),
        Command::Cluster { leader, action, .. } => {
            let change = match action {
                ClusterAction::Status => ClusterChange::None,
                ClusterAction::Add { id, address, learner } => ClusterChange::Add { id, address, learner },
                ClusterAction::Remove { id } => ClusterChange::Remove { id },
            };
            commands::cluster(&leader, &access, change)
        }
        Command::Changes {
            leader,
            from,
            tables,
            no_follow,
            ..
        } => commands::changes(&leader, &access, from, &tables, !no_follow),
        Command::Backup { leader, file, .. } => commands::backup(&leader, &access, &file),
        Command::Restore { file, data_dir, id } => daemon::commands::restore(&file, &data_dir, &id),
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
            commands::bench(client::bench::BenchOptions {
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
            })
        }
        Command::Certs {
            action: CertsAction::Init { dir },
        } => security::commands::certs_init(&dir),
        Command::Certs {
            action: CertsAction::Issue { kind, name, hosts, dir },
        } => {
            let kind = match kind {
                CertKindArg::Node => CertKind::Node,
                CertKindArg::Client => CertKind::Client,
            };
            security::commands::certs_issue(&dir, kind, &name, &hosts)
        }
        Command::Recover { node } => match node.load(None, None) {
            Ok(config) => daemon::commands::recover(&config),
            Err(code) => code,
        },
        Command::HashPassword => security::commands::hash_password(),
        Command::Version => {
            println!("chronos {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
