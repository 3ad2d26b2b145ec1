//! A tiny HTTP/1.1 server whose every answer a test scripts: for the hostile
//! sites `fake-jira` does not model (a proxy that ignores `startAt`, numbers
//! at the edge of the spec, a serverInfo behind SSO). One thread per
//! connection, `Connection: close`, loopback on an OS-chosen port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as the script sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    pub body: String,
}

impl Request {
    /// The value of query parameter `name` (first occurrence), as a number.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse().ok())
    }
}

/// An answer: status, extra headers, JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(value: serde_json::Value) -> Answer {
        Answer {
            status: 200,
            headers: Vec::new(),
            body: value.to_string(),
        }
    }

    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: r#"{"errorMessages":["scripted"]}"#.into(),
        }
    }

    pub fn redirect(to: &str) -> Answer {
        Answer {
            status: 302,
            headers: vec![("Location".into(), to.into())],
            body: String::new(),
        }
    }
}

type Script = dyn Fn(&Request) -> Answer + Send + Sync;

/// A running scripted server; it stops accepting when dropped (the thread
/// ends with the test process).
pub struct Scripted {
    port: u16,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Scripted {
    pub fn start(script: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let log2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let script = script.clone();
                let log = log2.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &*script, &log);
                });
            }
        });
        Scripted { port, log }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, script: &Script, log: &Mutex<Vec<Request>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let mut length = 0;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.to_string());
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request = Request {
        method,
        path,
        query,
        authorization,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock().unwrap().push(request.clone());
    let answer = script(&request);
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(answer.body.as_bytes())?;
    out.flush()
}
