//! The seed's example, in Rust: BeginSend with a callback and a `StateObject`, and
//! EndSend inside the callback.
//!
//! ```text
//! cargo run -p asyncresult-callback --example send_callback
//! ```

use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;

use asyncresult_callback::prelude::*;

/// What the callback needs, carried as the operation's `AsyncState`.
struct StateObject {
    work_socket: Socket,
    done: mpsc::Sender<usize>,
}

/// `Send_Callback` of the seed.
fn send_callback(ar: AsyncResult<usize>) {
    let so = ar
        .state::<StateObject>()
        .expect("the AsyncState is the StateObject");
    let s = &so.work_socket;

    let send = match s.end_send(&ar) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("EndSend failed: {e} (error code {:?})", e.error_code());
            return;
        }
    };

    println!("The size of the message sent was: {send}");
    let _ = so.done.send(send);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A loopback peer that reads everything it is sent.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let peer = thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let (mut conn, _) = listener.accept()?;
        let mut got = Vec::new();
        conn.read_to_end(&mut got)?;
        Ok(got)
    });

    let s = Socket::connect_tcp(addr)?;
    // "If it is important to your application to send every byte to the remote host
    // immediately, you can use SetSocketOption to enable SocketOptionName.NoDelay."
    s.set_nodelay(true)?;

    let message = b"This is a test message sent with BeginSend.".to_vec();
    let (done, finished) = mpsc::channel();
    let so = StateObject {
        work_socket: s.clone(),
        done,
    };
    let ar = s.begin_send(
        message.clone(),
        SocketFlags::NONE,
        callback(send_callback),
        state(so),
    )?;
    println!(
        "BeginSend returned (completed synchronously: {})",
        ar.completed_synchronously()
    );

    let sent = finished.recv()?;
    drop(ar); // the StateObject (and its socket handle) goes with the result
    s.close();
    let got = peer.join().map_err(|_| "peer thread panicked")??;
    assert_eq!(sent, message.len());
    assert_eq!(got, message);
    println!("The peer received {} bytes.", got.len());
    Ok(())
}
