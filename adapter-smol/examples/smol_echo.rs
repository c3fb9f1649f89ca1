//! An echo server and a client on smol, over loopback.
//!
//! ```text
//! cargo run -p asyncresult-smol --example smol_echo
//! ```

use asyncresult_smol::{Error, TcpListener, TcpStream};
use futures::io::{AsyncReadExt, AsyncWriteExt};

/// Echoes everything a client sends until it shuts its side down.
async fn serve(listener: TcpListener) -> Result<(), Error> {
    loop {
        let (stream, peer) = listener.accept().await?;
        smol::spawn(async move {
            // `&TcpStream` reads and writes too: copy from the stream into itself.
            let copied = futures::io::copy(&stream, &mut &stream).await;
            let _ = stream.socket().shutdown(std::net::Shutdown::Write);
            match copied {
                Ok(n) => println!("server: {peer} done ({n} bytes echoed)"),
                Err(e) => println!("server: {peer} failed: {e}"),
            }
        })
        .detach();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse()?).await?;
        let addr = listener.local_addr()?;
        smol::spawn(serve(listener)).detach();
        println!("echo server on {addr}");

        let mut client = TcpStream::connect(addr).await?;
        client.set_nodelay(true)?;
        for line in ["hello", "from", "asyncresult on smol"] {
            client.write_all(line.as_bytes()).await?;
            let mut reply = vec![0u8; line.len()];
            client.read_exact(&mut reply).await?;
            println!(
                "client: sent {line:?}, got {:?}",
                String::from_utf8_lossy(&reply)
            );
            assert_eq!(reply, line.as_bytes());
        }
        client.close().await?;
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await?;
        println!(
            "client: server closed after echoing everything ({} bytes left)",
            rest.len()
        );
        Ok(())
    })
}
