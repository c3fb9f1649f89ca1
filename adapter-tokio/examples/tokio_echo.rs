//! An echo server and a client on tokio, over loopback.
//!
//! ```text
//! cargo run -p asyncresult-tokio --example tokio_echo
//! ```

use asyncresult_tokio::{Error, TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Echoes everything a client sends until it shuts its side down.
async fn serve(listener: TcpListener) -> Result<(), Error> {
    loop {
        let (mut stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            println!("server: {peer} done");
        });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener));
    println!("echo server on {addr}");

    let mut client = TcpStream::connect(addr).await?;
    client.set_nodelay(true)?;
    for line in ["hello", "from", "asyncresult on tokio"] {
        client.write_all(line.as_bytes()).await?;
        let mut reply = vec![0u8; line.len()];
        client.read_exact(&mut reply).await?;
        println!(
            "client: sent {line:?}, got {:?}",
            String::from_utf8_lossy(&reply)
        );
        assert_eq!(reply, line.as_bytes());
    }
    client.shutdown().await?;
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await?;
    println!(
        "client: server closed after echoing everything ({} bytes left)",
        rest.len()
    );
    Ok(())
}
