//! The interactive shell: line editing and history (rustyline), statements
//! spanning lines until `;`, and a few backslash commands.

use super::session::Session;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use tokio::runtime::Runtime;

const PROMPT: &str = "chronos> ";
const CONTINUE: &str = "      -> ";

const HELP: &str = "\
Type SQL statements ending with ';'. A statement may span several lines.
BEGIN; ...; COMMIT; runs the statements in between as one atomic unit when
COMMIT is entered (results are shown then); ROLLBACK; discards them.

  \\help, \\h, \\?   this help
  \\q, \\quit       quit (Ctrl-D also quits; Ctrl-C clears the current input)

Examples:
  CREATE TABLE users (id INT PRIMARY KEY, name STRING, balance FLOAT);
  INSERT INTO users VALUES (1, 'alice', 100.0);
  SELECT * FROM users WHERE balance > 10 ORDER BY id;
  EXPLAIN SELECT * FROM users WHERE id = 1;
";

/// Runs the shell until the user quits.
pub fn run(runtime: &Runtime, session: &mut Session, leader: &str) -> rustyline::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".chronos_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!("Connected to ChronosDB at {leader}. Type \\help for help, \\q to quit.");
    if let Some(queue) = session.queue() {
        println!(
            "Offline queue {}: {} statements pending; writes are queued while no node answers and replayed, in order, before the next write.",
            queue.path().display(),
            queue.len()
        );
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { PROMPT } else { CONTINUE };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        };
        if buffer.is_empty() {
            match line.trim() {
                "" => continue,
                "\\q" | "\\quit" | "quit" | "exit" => {
                    let _ = editor.add_history_entry(line.trim());
                    break;
                }
                "\\help" | "\\h" | "\\?" | "help" => {
                    print!("{HELP}");
                    continue;
                }
                cmd if cmd.starts_with('\\') => {
                    eprintln!("unknown command {cmd}; type \\help");
                    continue;
                }
                _ => {}
            }
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !is_complete(&buffer) {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        let sql = std::mem::take(&mut buffer);
        // Errors are printed by the session; the shell carries on.
        let _ = runtime.block_on(session.run(&sql, &mut std::io::stdout(), &mut std::io::stderr()));
        if session.in_transaction() {
            println!("(in a transaction: statements run at COMMIT)");
        }
    }
    if session.in_transaction() {
        eprintln!("open transaction discarded (no COMMIT)");
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// True when the input ends with `;` outside quotes and comments.
pub fn is_complete(input: &str) -> bool {
    let mut in_single = false;
    let mut in_double = false;
    let mut last = None;
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '-' if !in_single && !in_double && chars.peek() == Some(&'-') => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            last = Some(c);
        }
    }
    !in_single && !in_double && last == Some(';')
}

#[cfg(test)]
mod tests {
    use super::is_complete;

    #[test]
    fn statement_ends_at_semicolon_outside_quotes() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- done\n"));
        assert!(!is_complete("SELECT 'a;"));
        assert!(!is_complete("SELECT 1 -- ;\n"));
        assert!(!is_complete("INSERT INTO t\nVALUES (1)"));
    }
}
