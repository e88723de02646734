//! The bodies of the client-side commands of the `chronos` binary: the SQL
//! shell, its offline queue, cluster membership, sync status, the change
//! feed, backups and the load generator. Each returns the process's exit
//! status after printing what went wrong; none parses arguments (main.rs
//! does).

use super::{Access, Client, ClientError, Consistency, Format, OfflineQueue, Session};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `chronos cluster` does.
pub enum ClusterChange {
    /// Only show the membership.
    None,
    Add {
        id: String,
        address: String,
        learner: bool,
    },
    Remove {
        id: String,
    },
}

/// `chronos client`: the REPL on a terminal, else the statements of `-e`
/// or of standard input.
pub fn shell(
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
        Err(e) => return failed(e),
    };
    // With a queue the client starts even while no node answers.
    let connecting = match queue.is_some() {
        true => runtime.block_on(Client::connect_lazy(leader, access)),
        false => runtime.block_on(Client::connect_with(leader, access)),
    };
    let mut client = match connecting {
        Ok(c) => c,
        Err(e) => return failed(e),
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
            return match super::repl::run(&runtime, &mut session, leader) {
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
                return failed(format!("cannot read standard input: {e}"));
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

/// The offline queue named by `--offline-queue`, opened.
fn open_queue(path: Option<&Path>) -> Result<(OfflineQueue, &Path), ExitCode> {
    let Some(path) = path else {
        eprintln!("ERROR: name the queue with --offline-queue DIR (or CHRONOS_OFFLINE_QUEUE)");
        return Err(ExitCode::from(2));
    };
    OfflineQueue::open(path).map(|q| (q, path)).map_err(failed)
}

/// `chronos client queue status`: how many writes wait, and the first few.
pub fn queue_status(path: Option<&Path>) -> ExitCode {
    let (queue, path) = match open_queue(path) {
        Ok(q) => q,
        Err(code) => return code,
    };
    let pending = match queue.pending() {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
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

/// `chronos client queue clear`: drops every waiting write.
pub fn queue_clear(path: Option<&Path>) -> ExitCode {
    let (queue, _) = match open_queue(path) {
        Ok(q) => q,
        Err(code) => return code,
    };
    match queue.clear() {
        Ok(n) => {
            println!("dropped {n} queued statements");
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// `chronos client queue flush`: replays the waiting writes now.
pub fn queue_flush(leader: &str, access: &Access, path: Option<&Path>) -> ExitCode {
    let (queue, _) = match open_queue(path) {
        Ok(q) => q,
        Err(code) => return code,
    };
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let replayed = runtime.block_on(async {
        let mut client = Client::connect_lazy(leader, access).await.map_err(|e| e.to_string())?;
        client.retry_for = std::time::Duration::from_secs(1);
        let mut session = Session::new(client, Format::Table).with_queue(queue);
        session.replay(&mut std::io::stdout()).await.map_err(|e| e.to_string())
    });
    let r = match replayed {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    println!(
        "replayed {} statements ({} failed); {} still pending",
        r.sent, r.failed, r.pending
    );
    match r.pending {
        0 => ExitCode::SUCCESS,
        _ => failed(format!("no node at {leader} answers; the rest stays queued")),
    }
}

/// `chronos cluster status|add|remove`: prints the membership afterwards.
pub fn cluster(address: &str, access: &Access, change: ClusterChange) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let mut client = Client::connect_with(address, access).await?;
        match change {
            ClusterChange::None => client.cluster_status().await,
            ClusterChange::Add { id, address, learner } => client.add_member(&id, &address, learner).await,
            ClusterChange::Remove { id } => client.remove_member(&id).await,
        }
    });
    match result {
        Ok(status) => {
            print!("{}", super::format_cluster_status(&status));
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// `chronos sync status`.
pub fn sync_status(leader: &str, access: &Access) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(super::sync_status(leader, access)) {
        Ok(status) => {
            print!("{}", super::format_sync_status(&status));
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// `chronos changes`: one JSON line per change, following or until caught up.
pub fn changes(address: &str, access: &Access, from: u64, tables: &[String], follow: bool) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let mut feed = super::changes::Subscription::open(address, access, from, tables, follow).await?;
        while let Some(event) = feed.next().await? {
            println!("{}", event.to_json());
        }
        Ok::<(), ClientError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

/// `chronos backup FILE`: written beside the target and renamed at the
/// end, so a failed backup never leaves a truncated file under the name
/// asked for. A progress bar goes to a terminal.
pub fn backup(address: &str, access: &Access, file: &Path) -> ExitCode {
    let Some(runtime) = current_thread_runtime() else {
        return ExitCode::FAILURE;
    };
    let partial = file.with_extension("partial");
    let written = runtime.block_on(async {
        let mut client = Client::connect_with(address, access).await?;
        let out = std::fs::File::create(&partial)
            .map_err(|e| ClientError::Status(format!("cannot create {}: {e}", partial.display())))?;
        let mut out = std::io::BufWriter::new(out);
        let terminal = std::io::stderr().is_terminal();
        let bytes = client
            .backup(&mut out, |done, total| {
                if terminal && total > 0 {
                    eprint!("\r{}", progress_bar(done, total));
                }
            })
            .await?;
        if terminal {
            eprintln!();
        }
        let cannot_write = |e: String| ClientError::Status(format!("cannot write the backup: {e}"));
        let file_handle = out.into_inner().map_err(|e| cannot_write(e.to_string()))?;
        file_handle.sync_all().map_err(|e| cannot_write(e.to_string()))?;
        std::fs::rename(&partial, file)
            .map_err(|e| ClientError::Status(format!("cannot write {}: {e}", file.display())))?;
        Ok::<u64, ClientError>(bytes)
    });
    match written {
        Ok(bytes) => {
            println!("backup of {address}: {bytes} bytes written to {}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            failed(e)
        }
    }
}

/// `[#####     ]  50.0% 10 / 20 MiB`
fn progress_bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 40;
    let filled = (done.min(total) * WIDTH / total) as usize;
    format!(
        "[{}{}] {:>5.1}% {} / {} MiB",
        "#".repeat(filled),
        " ".repeat(WIDTH as usize - filled),
        done as f64 * 100.0 / total as f64,
        done >> 20,
        total >> 20
    )
}

/// `chronos bench`.
pub fn bench(options: super::bench::BenchOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chronos: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match runtime.block_on(super::bench::run(options, &mut out, &mut err)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

/// A one-thread runtime for a command's calls.
fn current_thread_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("chronos: cannot start: {e}");
            None
        }
    }
}

/// Says what went wrong; the exit status of a failed command.
fn failed(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("ERROR: {e}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::progress_bar;

    #[test]
    fn the_progress_bar_fills_with_the_bytes_done() {
        assert_eq!(
            progress_bar(0, 4 << 20),
            format!("[{}]   0.0% 0 / 4 MiB", " ".repeat(40))
        );
        assert_eq!(
            progress_bar(2 << 20, 4 << 20),
            format!("[{}{}]  50.0% 2 / 4 MiB", "#".repeat(20), " ".repeat(20))
        );
        assert_eq!(
            progress_bar(4 << 20, 4 << 20),
            format!("[{}] 100.0% 4 / 4 MiB", "#".repeat(40))
        );
    }
}
