//! UDP with Begin/End: a responder that answers each datagram from its callback, and a
//! client that sends to it and reads the answers, with `AsyncState` carrying context.
//!
//! ```text
//! cargo run -p asyncresult-callback --example udp
//! ```

use std::net::SocketAddr;

use asyncresult_callback::prelude::*;

/// The responder: receive a datagram, answer it in upper case, receive the next.
fn respond(socket: Socket) {
    let s = socket.clone();
    let begun = socket.begin_receive_from(
        Vec::with_capacity(1500),
        SocketFlags::NONE,
        callback(move |ar: AsyncResult<(usize, Vec<u8>, SocketAddr)>| {
            let Ok((_, datagram, from)) = s.end_receive_from(&ar) else {
                return; // closed
            };
            let answer = datagram.to_ascii_uppercase();
            let _ = s.begin_send_to(answer, SocketFlags::NONE, from, None, None);
            respond(s);
        }),
        None,
    );
    if let Err(e) = begun {
        eprintln!("responder: {e}");
    }
}

/// What the client's receive callback needs.
struct Question {
    text: &'static str,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let responder = Socket::bind_udp("127.0.0.1:0".parse()?)?;
    let to = responder.local_addr()?;
    respond(responder.clone());
    println!("responder on {to}");

    let client = Socket::bind_udp("127.0.0.1:0".parse()?)?;
    for text in ["ping", "hello datagram", "asyncresult"] {
        let answer = client.begin_receive_from(
            Vec::with_capacity(1500),
            SocketFlags::NONE,
            None,
            state(Question { text }),
        )?;
        client.end_send_to(&client.begin_send_to(text, SocketFlags::NONE, to, None, None)?)?;
        let (n, buf, from) = client.end_receive_from(&answer)?;
        let question = answer.state::<Question>().map_or("?", |q| q.text);
        println!(
            "{question:?} -> {:?} ({n} bytes from {from})",
            String::from_utf8_lossy(&buf)
        );
        assert_eq!(buf, question.to_ascii_uppercase().as_bytes());
    }
    responder.close();
    Ok(())
}
