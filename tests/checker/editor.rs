//! The editor experience with a real YAML language server (Red Hat's
//! `yaml-language-server`, the one behind VS Code's YAML extension and most
//! LSP clients), spoken to over stdio as an editor would: a file with the
//! modeline `# yaml-language-server: $schema=...` gets, on hover over a key,
//! that FIELD's description (not the description of its enum's value), and
//! completion offers the fields of the kind.
//!
//! Needs node and the server: `scripts/test` installs it with npm into
//! `target/yaml-language-server/` and runs this test; by hand:
//! `npm install --prefix target/yaml-language-server yaml-language-server`
//! then `cargo test --test checker editor -- --ignored` (or point
//! `ASCTL_YAML_LANGUAGE_SERVER` at a `yaml-language-server` executable).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ASCTL_YAML_LANGUAGE_SERVER") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/yaml-language-server/node_modules/.bin/yaml-language-server");
    assert!(
        p.exists(),
        "{} is not installed: npm install --prefix target/yaml-language-server yaml-language-server",
        p.display()
    );
    p
}

/// An LSP client over the server's stdio: requests by id, answering the
/// server's own requests (configuration, registrations) on the way.
struct Client {
    child: Child,
    stdin: ChildStdin,
    inbox: Receiver<Value>,
    next_id: u64,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(server_path())
            .arg("--stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the language server starts");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, inbox) = channel();
        std::thread::spawn(move || {
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        length = v.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("a Content-Length header")];
                if stdout.read_exact(&mut body).is_err() {
                    return;
                }
                let msg: Value = serde_json::from_slice(&body).expect("a JSON-RPC message");
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            inbox,
            next_id: 1,
        }
    }

    fn send(&mut self, msg: Value) {
        let body = msg.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let msg = self
                .inbox
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no answer to {method} in {WAIT:?}"));
            if msg["id"] == id && msg.get("method").is_none() {
                assert!(msg.get("error").is_none(), "{method}: {msg}");
                return msg["result"].clone();
            }
            if let (Some(server_id), Some(m)) = (msg.get("id"), msg["method"].as_str()) {
                let result = match m {
                    // One settings object per item asked for.
                    "workspace/configuration" => {
                        let n = msg["params"]["items"].as_array().map_or(1, Vec::len);
                        Value::Array(vec![settings(); n])
                    }
                    _ => Value::Null,
                };
                let answer = json!({"jsonrpc": "2.0", "id": server_id, "result": result});
                self.send(answer);
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings() -> Value {
    json!({"validate": true, "hover": true, "completion": true, "schemas": {}})
}

fn schema() -> (PathBuf, Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/asctl.schema.json");
    let text = std::fs::read_to_string(&path).expect("the schema");
    (path, serde_json::from_str(&text).expect("JSON"))
}

/// The text of a hover answer, whatever shape the server chose.
fn hover_text(result: &Value) -> String {
    match &result["contents"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(|p| p["value"].as_str().or(p.as_str()).unwrap_or("").to_owned())
            .collect::<Vec<_>>()
            .join("\n"),
        other => other["value"].as_str().unwrap_or("").to_owned(),
    }
}

/// Markdown as words: the server escapes backticks and breaks lines.
fn words(text: &str) -> String {
    text.replace(['\\', '`'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
#[ignore = "needs node and yaml-language-server: scripts/test installs them into target/ and runs it; see the module doc"]
fn hover_shows_the_fields_description_and_completion_offers_fields() {
    let (schema_path, schema) = schema();
    let field = |spec: &str, key: &str| {
        schema["definitions"][spec]["properties"][key]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("{spec}.{key} has a description in the schema"))
            .to_owned()
    };
    // As the examples are written: one file per object, the modeline first.
    let modeline = format!(
        "# yaml-language-server: $schema={}\n",
        schema_path.display()
    );
    let node = modeline.clone()
        + "apiVersion: asctl/v1\nkind: Node\nmetadata:\n  name: vm1\nspec:\n  host: esx1\n  nicTeaming: none\n  \n";
    let group = modeline
        + "apiVersion: asctl/v1\nkind: ResourceGroup\nmetadata:\n  name: app\nspec:\n  preferredNodes: [vm1]\n  failback: manual\n";
    let dir = tempfile::tempdir().unwrap();

    let mut c = Client::start();
    let root = format!("file://{}", dir.path().display());
    c.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": root,
            "capabilities": {
                "workspace": {"configuration": true},
                "textDocument": {
                    "hover": {"contentFormat": ["markdown", "plaintext"]},
                    "completion": {"completionItem": {"snippetSupport": false}}
                }
            }
        }),
    );
    c.notify("initialized", json!({}));
    c.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"yaml": settings()}}),
    );
    let mut open = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let uri = format!("file://{}", file.display());
        c.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}),
        );
        uri
    };
    let (node, group) = (open("node.yaml", &node), open("group.yaml", &group));
    let at = |uri: &str, line: usize, character: usize| json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}});

    // Hover on the keys: each field's own description. The descriptions of
    // the values (`No NIC teaming.`, `Stay on the node ...`) are not it.
    for (uri, spec, key) in [
        (&node, "NodeSpec", "nicTeaming"),
        (&group, "ResourceGroupSpec", "failback"),
    ] {
        let hover = hover_text(&c.request("textDocument/hover", at(uri, 7, 4)));
        assert!(
            words(&hover).contains(&words(&field(spec, key))),
            "hover on {key}: {hover:?}"
        );
    }

    // Completion on the empty line of the Node's spec offers its fields.
    let result = c.request("textDocument/completion", at(&node, 8, 2));
    let items = result["items"].as_array().or(result.as_array()).cloned();
    let labels: Vec<String> = items
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["label"].as_str().map(str::to_owned))
        .collect();
    for expected in ["os", "platform", "scsiControllers"] {
        assert!(
            labels.iter().any(|l| l == expected),
            "completion offers `{expected}`: {labels:?}"
        );
    }
    c.request("shutdown", Value::Null);
    c.notify("exit", Value::Null);
}
