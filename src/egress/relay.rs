//! `foreman relay`: the first process of a sandbox under an allowlist. It listens on the
//! sandbox's loopback, passes each connection to its Unix socket (foreman's side decides what
//! goes further), starts the agent, and exits as the agent does — taking the sandbox with it.
//!
//! It holds nothing secret and decides nothing: an agent that kills it ends its own turn, one
//! that talks to the sockets directly meets the same proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, UnixStream};

/// One `LISTEN=SOCKET` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub listen: SocketAddr,
    pub socket: PathBuf,
}

impl std::str::FromStr for Pair {
    type Err = String;

    fn from_str(text: &str) -> Result<Pair, String> {
        let (listen, socket) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not LISTEN=SOCKET"))?;
        Ok(Pair {
            listen: listen
                .parse()
                .map_err(|_| format!("`{listen}` is not an address and port"))?,
            socket: PathBuf::from(socket),
        })
    }
}

/// The relay's command line.
#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Listen on LISTEN and pass each connection to the Unix socket SOCKET.
    #[arg(long = "forward", value_name = "LISTEN=SOCKET")]
    pub forwards: Vec<Pair>,
    /// The program to run, and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Runs the relay; the exit code is the program's (128 + the signal that killed it).
pub fn main(args: RelayArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("foreman relay: cannot start: {e}");
            return ExitCode::from(125);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("foreman relay: {e:#}");
            ExitCode::from(125)
        }
    }
}

async fn run(args: RelayArgs) -> Result<u8> {
    // Every port is open before the program starts, so its first request finds it.
    for pair in &args.forwards {
        let listener = match TcpListener::bind(pair.listen).await {
            Ok(l) => l,
            // A sandbox without IPv6 still serves the IPv4 loopback.
            Err(_) if pair.listen.is_ipv6() => continue,
            Err(e) => bail!("cannot listen on {}: {e}", pair.listen),
        };
        tokio::spawn(accept(listener, pair.socket.clone()));
    }
    let Some((program, rest)) = args.command.split_first() else {
        bail!("no program to run");
    };
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .spawn()
        .with_context(|| format!("cannot start `{program}`"))?;
    let status = child.wait().await.context("waiting for the program")?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    })
}

async fn accept(listener: TcpListener, socket: PathBuf) {
    loop {
        let Ok((mut inside, _)) = listener.accept().await else {
            // Out of descriptors, say: wait rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Ok(mut outside) = UnixStream::connect(&socket).await {
                let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse() {
        let pair: Pair = "127.0.0.1:3128=/run/x/proxy.sock".parse().unwrap();
        assert_eq!(pair.listen, "127.0.0.1:3128".parse().unwrap());
        assert_eq!(pair.socket, PathBuf::from("/run/x/proxy.sock"));
        let v6: Pair = "[::1]:80=/s".parse().unwrap();
        assert!(v6.listen.is_ipv6());
        assert!("127.0.0.1=/s".parse::<Pair>().is_err());
        assert!("/s".parse::<Pair>().is_err());
    }
}
