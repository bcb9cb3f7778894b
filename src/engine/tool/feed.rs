//! Feeding a tool's standard input from a stream (`pg_restore`, `psql` and `mariadb`
//! reading a dump): a task of its own writes into a 1 MiB pipe with up to
//! [`FEED_AHEAD`] read ahead, so that a client waiting on its server finds the next
//! statement already there; a read error kills the tool before its input can end.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::Command;

use super::{Error, Judge, TOOL_PIPE, Tail, carried, follow_stderr, spawn_error};

/// Runs a tool to its end with `input` on its standard input, calling `on_bytes` with
/// the count of bytes fed so far; its error output goes line by line to `on_line`
/// (scrubbed) and into `tail`. The judged error when it fails; `RestoreFailed` when it
/// exits cleanly without reading all its input. A read error of `input` kills the tool
/// and is returned as the error it carries (see [`carried`]), else as `Corrupt`.
///
/// `input` is read up to [`FEED_AHEAD`] bytes ahead of the tool: a client that sends one
/// statement and waits for the server reads nothing meanwhile, and then wants the next
/// statement at once, not as fast as `input` can be decompressed and checked.
pub async fn run_feeding(
    mut command: Command,
    mut input: impl AsyncRead + Unpin,
    tail: Tail,
    judge: &Judge,
    mut on_bytes: impl FnMut(u64),
    on_line: impl Fn(&str) + Send + Sync + 'static,
) -> Result<(), Error> {
    use tokio::io::AsyncReadExt;
    command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| spawn_error(&command, &error))?;
    let follower = follow_stderr(&mut child, tail.clone(), on_line);
    let stdin = child.stdin.take().expect("stdin is piped");
    // A pipe that holds a whole statement (dumps write about 1 MiB each) is filled while
    // the server runs the one before. Where the kernel refuses, the default stays.
    let _ = rustix::pipe::fcntl_setpipe_size(&stdin, TOOL_PIPE);
    // The writing runs as a task of its own, so that it answers the tool at once while
    // this one reads, decompresses and checks what comes next.
    let (chunks, received) = tokio::sync::mpsc::channel::<bytes::Bytes>(FEED_AHEAD / FEED_CHUNK);
    let fed = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_all(stdin, received, fed.clone()));
    let mut writer = AbortOnDrop(writer);
    let mut reported = 0;
    loop {
        let mut chunk = bytes::BytesMut::with_capacity(FEED_CHUNK);
        let read = match input.read_buf(&mut chunk).await {
            Ok(read) => read,
            Err(error) => {
                // Killed before its input could end: it never takes what it has as whole.
                let _ = child.start_kill();
                return Err(carried(error)
                    .unwrap_or_else(|error| Error::Corrupt(format!("cannot read the data: {error}"))));
            }
        };
        let so_far = fed.load(Ordering::Relaxed);
        if so_far > reported {
            reported = so_far;
            on_bytes(so_far);
        }
        // At the end, or the writer stopped: the tool closed its input.
        if read == 0 || chunks.send(chunk.freeze()).await.is_err() {
            break;
        }
    }
    drop(chunks);
    let complete = (&mut writer.0).await.unwrap_or(false);
    let fed = fed.load(Ordering::Relaxed);
    if fed > reported {
        on_bytes(fed);
    }
    let status = child.wait().await.map_err(|error| Error::Unreachable(error.to_string()))?;
    let _ = follower.await;
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    match (status.success(), complete) {
        (true, true) => Ok(()),
        (true, false) => Err(Error::RestoreFailed(format!(
            "{program} stopped reading its input after {fed} bytes without an error"
        ))),
        (false, _) => Err(judge(status, &tail.text())),
    }
}

/// Writes every chunk to a tool's standard input, counting them in `fed`, and closes it
/// at the end; false when the tool closed it first.
async fn write_all(
    mut stdin: tokio::process::ChildStdin,
    mut chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    fed: Arc<AtomicU64>,
) -> bool {
    while let Some(chunk) = chunks.recv().await {
        // A tool that exits early closes its stdin; its exit status tells why.
        if stdin.write_all(&chunk).await.is_err() {
            return false;
        }
        fed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    true
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How far [`run_feeding`] reads ahead of the tool, at most.
const FEED_AHEAD: usize = 4 << 20;
/// The most [`run_feeding`] reads at a time.
const FEED_CHUNK: usize = 64 << 10;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;
    use crate::engine::tool::command;

    fn judge() -> Judge {
        Arc::new(|status, tail| Error::Unreachable(format!("{status}: {tail}")))
    }

    /// Yields `data` in reads of at most `step` bytes, then `failure` if any (else the end).
    struct Source {
        data: Vec<u8>,
        at: usize,
        step: usize,
        failure: Option<Error>,
    }

    impl AsyncRead for Source {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            if this.at == this.data.len() {
                return Poll::Ready(match this.failure.take() {
                    Some(error) => Err(std::io::Error::other(error)),
                    None => Ok(()),
                });
            }
            let count = this.step.min(buf.remaining()).min(this.data.len() - this.at);
            buf.put_slice(&this.data[this.at..this.at + count]);
            this.at += count;
            Poll::Ready(Ok(()))
        }
    }

    fn source(length: usize, step: usize, failure: Option<Error>) -> Source {
        let data = (0..length).map(|index| (index * 7 % 251) as u8).collect();
        Source { data, at: 0, step, failure }
    }

    fn shell(script: &str, dir: &Path) -> Command {
        let mut command = command(Path::new("sh"));
        command.args(["-c", script]).current_dir(dir);
        command
    }

    #[tokio::test]
    async fn a_fed_tool_gets_every_byte_and_progress_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let input = source(3 * FEED_AHEAD + 12_345, 10_000, None);
        let expected = input.data.clone();
        let mut progress = Vec::new();
        let on_bytes = |bytes| progress.push(bytes);
        let fed =
            run_feeding(shell("cat > fed", dir.path()), input, Tail::default(), &judge(), on_bytes, |_| {})
                .await;
        fed.unwrap();
        assert!(std::fs::read(dir.path().join("fed")).unwrap() == expected, "the tool read it all, in order");
        assert!(progress.windows(2).all(|pair| pair[0] < pair[1]), "progress rises");
        assert_eq!(progress.last().copied(), Some(expected.len() as u64), "and ends at the total");
    }

    #[tokio::test]
    async fn a_read_error_kills_the_tool_before_its_input_ends() {
        let dir = tempfile::tempdir().unwrap();
        let corrupt = Error::Corrupt("the dump was cut short".into());
        let input = source(2 * FEED_AHEAD, 64 << 10, Some(corrupt));
        // Had the tool seen its input end, it would go on to write `ended`.
        let script = "cat > fed; touch ended";
        let error =
            run_feeding(shell(script, dir.path()), input, Tail::default(), &judge(), |_| {}, |_| {}).await;
        assert!(matches!(&error, Err(Error::Corrupt(message)) if message.contains("cut short")), "{error:?}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!dir.path().join("ended").exists(), "the tool was killed, not handed an end of input");
    }

    #[tokio::test]
    async fn a_tool_that_stops_reading_or_fails_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let input = source(2 * FEED_AHEAD, 64 << 10, None);
        let stops = shell("head -c 100 >/dev/null", dir.path());
        let early = run_feeding(stops, input, Tail::default(), &judge(), |_| {}, |_| {}).await;
        assert!(
            matches!(&early, Err(Error::RestoreFailed(message)) if message.contains("stopped reading its input")),
            "{early:?}"
        );

        let input = source(1 << 20, 64 << 10, None);
        let script = "cat >/dev/null; echo 'ERROR 1062: duplicate entry' >&2; exit 1";
        let failed =
            run_feeding(shell(script, dir.path()), input, Tail::default(), &judge(), |_| {}, |_| {}).await;
        assert!(
            matches!(&failed, Err(Error::Unreachable(message)) if message.contains("duplicate entry")),
            "{failed:?}"
        );
    }
}
