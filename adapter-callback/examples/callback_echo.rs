//! An echo server and a client with Begin/End calls and callbacks only: no runtime,
//! no thread of our own for the server.
//!
//! ```text
//! cargo run -p asyncresult-callback --example callback_echo
//! ```

use std::sync::mpsc;

use asyncresult_callback::prelude::*;

/// Accepts connections forever, each served by [`echo`].
fn accept_loop(listener: Socket) {
    let l = listener.clone();
    let begun = listener.begin_accept(
        callback(move |ar: AsyncResult<Socket>| {
            if let Ok(stream) = l.end_accept(&ar) {
                echo(stream);
                accept_loop(l);
            }
        }),
        None,
    );
    if let Err(e) = begun {
        eprintln!("accept: {e}");
    }
}

/// Receives, sends back, and receives again, until the client shuts down.
fn echo(stream: Socket) {
    let s = stream.clone();
    let begun = stream.begin_receive(
        Vec::with_capacity(4096),
        SocketFlags::NONE,
        callback(
            move |ar: AsyncResult<(usize, Vec<u8>)>| match s.end_receive(&ar) {
                Ok((0, _)) | Err(_) => s.close(),
                Ok((_, data)) => {
                    // The next send queues behind this one, in order; no need to wait.
                    let _ = s.begin_send(data, SocketFlags::NONE, None, None);
                    echo(s);
                }
            },
        ),
        None,
    );
    if let Err(e) = begun {
        eprintln!("receive: {e}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = Socket::listen_tcp("127.0.0.1:0".parse()?, 64)?;
    let addr = listener.local_addr()?;
    accept_loop(listener.clone());
    println!("echo server on {addr}");

    let client = Socket::connect_tcp(addr)?;
    client.set_nodelay(true)?;
    for line in ["hello", "from", "asyncresult with callbacks"] {
        client.end_send(&client.begin_send(line, SocketFlags::NONE, None, None)?)?;
        let mut reply = Vec::new();
        while reply.len() < line.len() {
            let (_, chunk) = client.end_receive(&client.begin_receive(
                Vec::with_capacity(64),
                SocketFlags::NONE,
                None,
                None,
            )?)?;
            reply.extend_from_slice(&chunk);
        }
        println!(
            "client: sent {line:?}, got {:?}",
            String::from_utf8_lossy(&reply)
        );
        assert_eq!(reply, line.as_bytes());
    }
    // Shut our side down; the server closes its side when it sees that.
    client.shutdown(std::net::Shutdown::Write)?;
    let (done_tx, done) = mpsc::channel();
    let c = client.clone();
    client.begin_receive(
        Vec::with_capacity(64),
        SocketFlags::NONE,
        callback(move |ar: AsyncResult<(usize, Vec<u8>)>| {
            let _ = done_tx.send(c.end_receive(&ar).map(|(n, _)| n));
        }),
        None,
    )?;
    println!("client: server closed ({} bytes left)", done.recv()??);
    Ok(())
}
