//! Loopback stand-ins for the delivery services of production mode: an SMTP server and an HTTP SMS
//! gateway, each passing what it receives to the test.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

/// Everything one loopback listener received, read in order.
pub struct Inbox {
    rx: mpsc::Receiver<String>,
    seen: VecDeque<String>,
}

impl Inbox {
    /// The next message for which `matches` holds (waiting up to 20 s); others are kept.
    pub fn next_matching(&mut self, matches: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.seen.iter().position(|m| matches(m)) {
            return self.seen.remove(i).unwrap();
        }
        loop {
            let message = self.rx.recv_timeout(Duration::from_secs(20)).expect("a delivered message");
            if matches(&message) {
                return message;
            }
            self.seen.push_back(message);
        }
    }
}

/// A minimal SMTP server: accepts every message and passes its DATA on (quoted-printable undone).
pub fn smtp_listener() -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let _ = stream.write_all(b"220 test ESMTP\r\n");
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let command = line.to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") {
                        b"250-test\r\n250 8BITMIME\r\n"
                    } else if command.starts_with("DATA") {
                        let _ = stream.write_all(b"354 go ahead\r\n");
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            if reader.read_line(&mut l).unwrap_or(0) == 0 || l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        let _ = tx.send(data.replace("=\r\n", "").replace("=3D", "="));
                        b"250 queued\r\n"
                    } else if command.starts_with("QUIT") {
                        let _ = stream.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = stream.write_all(reply);
                    line.clear();
                }
            });
        }
    });
    (port, Inbox { rx, seen: VecDeque::new() })
}

/// A minimal HTTP endpoint standing for the SMS gateway: answers 200 and passes each JSON body on.
pub fn sms_gateway() -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = tx.send(String::from_utf8_lossy(&body).to_string());
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, Inbox { rx, seen: VecDeque::new() })
}
