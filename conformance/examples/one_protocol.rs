//! One protocol, three runtimes: a tiny line-based protocol written once, as a state
//! machine over bytes, and served through the callback adapter, the tokio adapter
//! and the smol adapter, each talking to a client of the same kind.
//!
//! The protocol: the client sends lines; the server answers each one.
//!
//! ```text
//! UPPER some text   ->  SOME TEXT
//! ADD 2 40          ->  42
//! QUIT              ->  BYE            (and the server closes the connection)
//! anything else     ->  ERR unknown command
//! ```
//!
//! ```text
//! cargo run -p asyncresult-conformance --example one_protocol
//! ```

use std::sync::mpsc;

use asyncresult_conformance::loopback;

/// The protocol, written once: no sockets, no runtime, just bytes in and bytes out.
mod protocol {
    /// What the server says to what the client sent so far.
    #[derive(Debug, Default)]
    pub struct Reply {
        /// Bytes to send back.
        pub out: Vec<u8>,
        /// The client asked to end the session.
        pub quit: bool,
    }

    /// The server side of one connection.
    #[derive(Debug, Default)]
    pub struct Session {
        pending: Vec<u8>,
    }

    impl Session {
        /// Feeds received bytes; answers every complete line.
        pub fn on_bytes(&mut self, bytes: &[u8]) -> Reply {
            self.pending.extend_from_slice(bytes);
            let mut reply = Reply::default();
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).trim().to_string();
                let answer = answer(&line);
                reply.out.extend_from_slice(answer.as_bytes());
                reply.out.push(b'\n');
                if line == "QUIT" {
                    reply.quit = true;
                    break;
                }
            }
            reply
        }
    }

    fn answer(line: &str) -> String {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        match command {
            "UPPER" => rest.to_uppercase(),
            "ADD" => rest
                .split_whitespace()
                .map(str::parse::<i64>)
                .sum::<Result<i64, _>>()
                .map_or_else(|_| "ERR not a number".to_string(), |n| n.to_string()),
            "QUIT" => "BYE".to_string(),
            _ => "ERR unknown command".to_string(),
        }
    }

    /// Splits what a client receives into lines.
    #[derive(Debug, Default)]
    pub struct Lines {
        pending: Vec<u8>,
    }

    impl Lines {
        /// Feeds received bytes; returns the complete lines.
        pub fn on_bytes(&mut self, bytes: &[u8]) -> Vec<String> {
            self.pending.extend_from_slice(bytes);
            let mut lines = Vec::new();
            while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                lines.push(String::from_utf8_lossy(&line[..end]).to_string());
            }
            lines
        }
    }

    /// The client's script.
    pub const REQUESTS: &[&str] = &["UPPER one protocol", "ADD 2 40", "PING", "QUIT"];
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The callback adapter: the server is a chain of callbacks, the client blocks in
/// `end_*` calls.
mod with_callbacks {
    use super::protocol::{Lines, Session, REQUESTS};
    use super::*;
    use asyncresult_callback::prelude::*;

    fn serve(socket: Socket, mut session: Session) {
        let s = socket.clone();
        let begun = socket.begin_receive(
            Vec::with_capacity(1024),
            SocketFlags::NONE,
            callback(
                move |ar: AsyncResult<(usize, Vec<u8>)>| match s.end_receive(&ar) {
                    Ok((n, data)) if n > 0 => {
                        let reply = session.on_bytes(&data);
                        let _ = s.begin_send(reply.out, SocketFlags::NONE, None, None);
                        if reply.quit {
                            // Shut down after the reply (sends go out in order).
                            let _ = s.begin_send(
                                Vec::new(),
                                SocketFlags::NONE,
                                callback({
                                    let s = s.clone();
                                    move |_| s.close()
                                }),
                                None,
                            );
                        } else {
                            serve(s, session);
                        }
                    }
                    _ => s.close(),
                },
            ),
            None,
        );
        if let Err(e) = begun {
            eprintln!("callbacks: {e}");
        }
    }

    pub fn run() -> Result<Vec<String>, BoxError> {
        let listener = Socket::listen_tcp(loopback(), 16)?;
        let (accepted_tx, accepted) = mpsc::channel();
        let l = listener.clone();
        listener.begin_accept(
            callback(move |ar: AsyncResult<Socket>| {
                if let Ok(s) = l.end_accept(&ar) {
                    serve(s, Session::default());
                }
                let _ = accepted_tx.send(());
            }),
            None,
        )?;
        let client = Socket::connect_tcp(listener.local_addr()?)?;
        accepted.recv()?;
        let mut lines = Lines::default();
        let mut answers = Vec::new();
        for (i, request) in REQUESTS.iter().enumerate() {
            client.end_send(&client.begin_send(
                format!("{request}\n"),
                SocketFlags::NONE,
                None,
                None,
            )?)?;
            while answers.len() <= i {
                let (n, data) = client.end_receive(&client.begin_receive(
                    Vec::with_capacity(1024),
                    SocketFlags::NONE,
                    None,
                    None,
                )?)?;
                if n == 0 {
                    break;
                }
                answers.extend(lines.on_bytes(&data));
            }
        }
        Ok(answers)
    }
}

/// The tokio adapter: the server is a task, the client awaits.
mod with_tokio {
    use super::protocol::{Lines, Session, REQUESTS};
    use super::*;
    use asyncresult_tokio::{TcpListener, TcpStream};

    async fn serve(stream: TcpStream) -> Result<(), BoxError> {
        let mut session = Session::default();
        loop {
            let (n, data) = stream.receive(Vec::with_capacity(1024)).await?;
            if n == 0 {
                return Ok(());
            }
            let reply = session.on_bytes(&data);
            stream.send(reply.out).await?;
            if reply.quit {
                stream.socket().close();
                return Ok(());
            }
        }
    }

    pub fn run() -> Result<Vec<String>, BoxError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let listener = TcpListener::bind(loopback()).await?;
            let client = TcpStream::connect(listener.local_addr()?).await?;
            let (server, _) = listener.accept().await?;
            let served = tokio::spawn(serve(server));
            let mut lines = Lines::default();
            let mut answers = Vec::new();
            for (i, request) in REQUESTS.iter().enumerate() {
                client.send(format!("{request}\n")).await?;
                while answers.len() <= i {
                    let (n, data) = client.receive(Vec::with_capacity(1024)).await?;
                    if n == 0 {
                        break;
                    }
                    answers.extend(lines.on_bytes(&data));
                }
            }
            served.await??;
            Ok(answers)
        })
    }
}

/// The smol adapter: the server is a task on a local executor, the client awaits.
mod with_smol {
    use super::protocol::{Lines, Session, REQUESTS};
    use super::*;
    use asyncresult_smol::{TcpListener, TcpStream};

    async fn serve(stream: TcpStream) -> Result<(), BoxError> {
        let mut session = Session::default();
        loop {
            let (n, data) = stream.receive(Vec::with_capacity(1024)).await?;
            if n == 0 {
                return Ok(());
            }
            let reply = session.on_bytes(&data);
            stream.send(reply.out).await?;
            if reply.quit {
                stream.socket().close();
                return Ok(());
            }
        }
    }

    pub fn run() -> Result<Vec<String>, BoxError> {
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(async {
            let listener = TcpListener::bind(loopback()).await?;
            let client = TcpStream::connect(listener.local_addr()?).await?;
            let (server, _) = listener.accept().await?;
            let served = ex.spawn(serve(server));
            let mut lines = Lines::default();
            let mut answers = Vec::new();
            for (i, request) in REQUESTS.iter().enumerate() {
                client.send(format!("{request}\n")).await?;
                while answers.len() <= i {
                    let (n, data) = client.receive(Vec::with_capacity(1024)).await?;
                    if n == 0 {
                        break;
                    }
                    answers.extend(lines.on_bytes(&data));
                }
            }
            served.await?;
            Ok(answers)
        }))
    }
}

fn main() -> Result<(), BoxError> {
    let mut all = Vec::new();
    for (name, run) in [
        (
            "callbacks",
            with_callbacks::run as fn() -> Result<Vec<String>, BoxError>,
        ),
        ("tokio", with_tokio::run),
        ("smol", with_smol::run),
    ] {
        let answers = run()?;
        println!("{name}:");
        for (request, answer) in protocol::REQUESTS.iter().zip(&answers) {
            println!("  {request:<20} -> {answer}");
        }
        all.push(answers);
    }
    assert!(
        all.windows(2).all(|w| w[0] == w[1]),
        "the runtimes disagree"
    );
    assert_eq!(all[0], ["ONE PROTOCOL", "42", "ERR unknown command", "BYE"]);
    println!("the same protocol gave the same answers through all three adapters");
    Ok(())
}
