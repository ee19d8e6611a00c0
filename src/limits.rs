//! The open-file limit. Every connection is a file descriptor (two when the mock runs in
//! the same process: it holds the other end), and a soft limit of 1,024 is common: at
//! start-up the soft limit is raised to the hard one when the run needs more, and a run
//! that needs more than the hard limit allows is refused before any request, with what
//! to do about it.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors a run holds besides its connections: stdio, the runtime's epoll and
/// wakers, the result file, a trace or dataset being read.
const SPARE: u64 = 64;

/// Descriptors a run of `connections` at once needs.
pub fn needed(connections: u64, mock_in_process: bool) -> u64 {
    connections * if mock_in_process { 2 } else { 1 } + SPARE
}

/// Makes sure `need` descriptors can be open at once: the soft limit is raised (to the
/// hard limit) if it is lower. Err: one line saying why it cannot be.
pub fn ensure(need: u64) -> Result<(), String> {
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    if soft >= need {
        return Ok(());
    }
    let hard = now.maximum.unwrap_or(u64::MAX);
    if hard < need {
        return Err(format!(
            "this run needs about {need} open files (one per connection, two with the embedded mock) but the hard limit is {hard}: raise it (ulimit -Hn as root, LimitNOFILE= for a systemd unit, nofile in /etc/security/limits.conf) or lower the concurrency"
        ));
    }
    setrlimit(Resource::Nofile, Rlimit { current: now.maximum, maximum: now.maximum })
        .map_err(|e| format!("this run needs about {need} open files and the soft limit is {soft}; raising it to {hard} failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_when_needed_and_an_impossible_need_is_refused() {
        let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
        assert!(ensure(64).is_ok());
        if hard < u64::MAX {
            let e = ensure(hard + 1).unwrap_err();
            assert!(e.contains(&format!("the hard limit is {hard}")) && !e.contains('\n'), "{e}");
            // Within the hard limit: raised (a no-op when it is raised already).
            ensure(hard).unwrap();
            assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
        }
        assert_eq!(needed(100, true), 264);
    }
}
