//! A real browser for tests: headless Chromium driven through chromedriver.
//!
//! [`Browser::start`] starts `chromedriver` on a free port, waits until it
//! answers, and opens a headless Chromium with a fresh profile. Everything
//! it started (chromedriver, Chromium and its helpers, the profile) is
//! killed and removed when the last [`Browser`] of that chromedriver is
//! dropped. Waits poll a JavaScript condition until it holds, so tests
//! never sleep for a fixed time.
//!
//! ```no_run
//! use liveview::testing::TestServer;
//! use liveview_testing::browser::Browser;
//! use liveview::LiveView;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::start(LiveView::builder(), my_app::routes()).await?;
//! let browser = Browser::start().await?;
//! browser.open(&server.url("/")).await?; // waits for the socket
//! browser.type_text("input[name=name]", "Ada").await?;
//! browser.click("button").await?;
//! browser.wait_for_text("#greeting", "Hello, Ada!").await?;
//! browser.save_screenshot("greeting").await?;
//!
//! // Another user, with cookies and storage of its own.
//! let other = browser.new_session().await?;
//! other.open(&server.url("/")).await?;
//! # Ok(()) }
//! # mod my_app { pub fn routes() -> axum::Router { axum::Router::new() } }
//! ```
//!
//! The programs are found at `/usr/bin/chromedriver` and `/usr/bin/chromium`
//! unless `LIVEVIEW_CHROMEDRIVER` / `LIVEVIEW_CHROMIUM` (or
//! [`BrowserBuilder`]) name others.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The default time a wait may take before it fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const POLL: Duration = Duration::from_millis(25);

/// The Chromium switches every session gets (besides its own
/// `--user-data-dir` and the window size).
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// What went wrong in the browser.
#[derive(Debug)]
#[non_exhaustive]
pub enum BrowserError {
    /// chromedriver could not be started or did not answer in time.
    Start(String),
    /// chromedriver refused to open a session (Chromium did not start).
    Session(NewSessionError),
    /// A WebDriver command failed.
    Command(CmdError),
    /// A condition did not hold in time.
    Timeout {
        /// What was waited for.
        what: String,
        /// How long it was waited for.
        after: Duration,
        /// The last value or JavaScript error seen, to help find out why.
        last: String,
    },
    /// Reading or writing a file (a screenshot) failed.
    Io(std::io::Error),
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Start(why) => write!(f, "cannot start chromedriver: {why}"),
            Self::Session(err) => write!(f, "cannot open a browser session: {err}"),
            Self::Command(err) => write!(f, "browser command failed: {err}"),
            Self::Timeout { what, after, last } => {
                write!(
                    f,
                    "timed out after {after:?} waiting for {what} (last seen: {last})"
                )
            }
            Self::Io(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for BrowserError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Session(err) => Some(err),
            Self::Command(err) => Some(err),
            Self::Io(err) => Some(err),
            Self::Start(_) | Self::Timeout { .. } => None,
        }
    }
}

impl From<CmdError> for BrowserError {
    fn from(err: CmdError) -> Self {
        Self::Command(err)
    }
}

impl From<NewSessionError> for BrowserError {
    fn from(err: NewSessionError) -> Self {
        Self::Session(err)
    }
}

impl From<std::io::Error> for BrowserError {
    fn from(err: std::io::Error) -> Self {
        Self::Io(err)
    }
}

/// Results of the browser helpers.
pub type Result<T, E = BrowserError> = std::result::Result<T, E>;

/// Options for [`Browser`]s: programs, switches, window size, wait timeout.
#[derive(Debug, Clone)]
pub struct BrowserBuilder {
    chromedriver: PathBuf,
    chromium: Option<PathBuf>,
    args: Vec<String>,
    window: (u32, u32),
    timeout: Duration,
}

impl Default for BrowserBuilder {
    fn default() -> Self {
        let chromium = std::env::var_os("LIVEVIEW_CHROMIUM")
            .map(PathBuf::from)
            .or_else(|| {
                Path::new(CHROMIUM)
                    .exists()
                    .then(|| PathBuf::from(CHROMIUM))
            });
        Self {
            chromedriver: std::env::var_os("LIVEVIEW_CHROMEDRIVER")
                .map_or_else(|| PathBuf::from(CHROMEDRIVER), PathBuf::from),
            chromium,
            args: CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect(),
            window: (1280, 900),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl BrowserBuilder {
    /// The chromedriver program.
    pub fn chromedriver(mut self, path: impl Into<PathBuf>) -> Self {
        self.chromedriver = path.into();
        self
    }

    /// The Chromium (or Chrome) program.
    pub fn chromium(mut self, path: impl Into<PathBuf>) -> Self {
        self.chromium = Some(path.into());
        self
    }

    /// One more command-line switch for Chromium.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The window size in CSS pixels (default 1280×900).
    pub fn window_size(mut self, width: u32, height: u32) -> Self {
        self.window = (width, height);
        self
    }

    /// How long the waits of the browser may take (default 15 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Start chromedriver and open the first session.
    pub async fn start(self) -> Result<Browser> {
        let driver = Arc::new(Driver::spawn(&self.chromedriver).await?);
        Browser::open_session(driver, Arc::new(self)).await
    }
}

/// One chromedriver process (in a process group of its own, with the
/// Chromium it starts) and the directory of its profiles.
#[derive(Debug)]
struct Driver {
    child: Mutex<Child>,
    url: String,
    dir: PathBuf,
    profiles: AtomicUsize,
}

impl Driver {
    async fn spawn(program: &Path) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "liveview-browser-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| BrowserError::Start(format!("{}: {e}", dir.display())))?;
        let mut last = String::new();
        // A free port can be taken between finding it and chromedriver
        // binding it: try a few.
        for _ in 0..3 {
            let port = free_port().map_err(|e| BrowserError::Start(e.to_string()))?;
            let log_path = dir.join("chromedriver.log");
            let log = File::create(&log_path).map_err(|e| BrowserError::Start(e.to_string()))?;
            let mut command = Command::new(program);
            command
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(
                    log.try_clone()
                        .map_err(|e| BrowserError::Start(e.to_string()))?,
                )
                .stderr(log);
            #[cfg(unix)]
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command
                .spawn()
                .map_err(|e| BrowserError::Start(format!("{}: {e}", program.display())))?;
            let driver = Self {
                child: Mutex::new(child),
                url: format!("http://127.0.0.1:{port}"),
                dir: dir.clone(),
                profiles: AtomicUsize::new(0),
            };
            match driver.ready(port).await {
                Ok(()) => return Ok(driver),
                Err(why) => {
                    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
                    last = format!("{why}; chromedriver said: {}", output.trim());
                    driver.kill();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(BrowserError::Start(last))
    }

    /// Poll until chromedriver accepts connections, or fail if it exits.
    async fn ready(&self, port: u16) -> std::result::Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait();
            if let Ok(Some(status)) = exited {
                return Err(format!("chromedriver exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not listen within 20 s".into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn new_profile(&self) -> PathBuf {
        let n = self.profiles.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("profile-{n}"))
    }

    /// Kill chromedriver and everything it started.
    fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        #[cfg(unix)]
        {
            // The process group holds chromedriver and the browsers it ran.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
        if std::fs::remove_dir_all(&self.dir).is_err() {
            // A dying browser may still have been writing its profile.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// A headless Chromium session.
///
/// Cloning is not offered: a second, independent browser (its own cookies,
/// storage and tabs) is [`new_session`](Self::new_session).
pub struct Browser {
    client: Client,
    driver: Arc<Driver>,
    options: Arc<BrowserBuilder>,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("chromedriver", &self.driver.url)
            .field("timeout", &self.options.timeout)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Start chromedriver and a headless Chromium with the default options.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// Options for [`start`](BrowserBuilder::start).
    pub fn builder() -> BrowserBuilder {
        BrowserBuilder::default()
    }

    async fn open_session(driver: Arc<Driver>, options: Arc<BrowserBuilder>) -> Result<Self> {
        let profile = driver.new_profile();
        let mut args: Vec<String> = options.args.clone();
        args.push(format!(
            "--window-size={},{}",
            options.window.0, options.window.1
        ));
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut chrome = json!({ "args": args });
        if let Some(binary) = &options.chromium {
            chrome["binary"] = json!(binary.display().to_string());
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), chrome);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await?;
        Ok(Self {
            client,
            driver,
            options,
        })
    }

    /// A second browser on the same chromedriver, independent of this one
    /// (a fresh profile: no shared cookies or storage).
    pub async fn new_session(&self) -> Result<Self> {
        Self::open_session(self.driver.clone(), self.options.clone()).await
    }

    /// The WebDriver client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The timeout of [`wait`](Self::wait) and of the helpers that wait.
    pub fn timeout(&self) -> Duration {
        self.options.timeout
    }

    /// Load `url` without waiting for the LiveView socket.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client.goto(url).await?;
        Ok(())
    }

    /// Load `url` and wait until the page's LiveView socket is open
    /// (`<html data-liveview-connected="true">`).
    pub async fn open(&self, url: &str) -> Result<()> {
        self.goto(url).await?;
        self.wait_connected().await
    }

    /// Wait until the page's LiveView socket is open.
    pub async fn wait_connected(&self) -> Result<()> {
        self.wait(r#"document.documentElement.dataset.liveviewConnected === "true""#)
            .await
    }

    /// Send a command of the Chrome DevTools protocol to this session's
    /// page (through chromedriver's `goog/cdp/execute`), e.g.
    /// `Network.emulateNetworkConditions`; returns its result.
    pub async fn cdp(&self, command: &str, params: Value) -> Result<Value> {
        let command = Cdp {
            command: command.to_owned(),
            params,
        };
        Ok(self.client.issue_cmd(command).await?)
    }

    /// Run `script` in every page this session loads from now on, before
    /// the page's own scripts (`Page.addScriptToEvaluateOnNewDocument`):
    /// to take an API away from the page, or to wrap it.
    ///
    /// ```no_run
    /// # async fn f(browser: &liveview_testing::browser::Browser) -> liveview_testing::browser::Result<()> {
    /// // A browser without WebSocket.
    /// browser.before_each_page("delete window.WebSocket;").await?;
    /// # Ok(()) }
    /// ```
    pub async fn before_each_page(&self, script: &str) -> Result<()> {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": script }),
        )
        .await?;
        Ok(())
    }

    /// Run a script (a function body: use `return` for a value) with
    /// `arguments[0..]` bound to `args`.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// The value of a JavaScript expression.
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        self.execute(&format!("return ({expression});"), Vec::new())
            .await
    }

    /// Wait up to `timeout` until the JavaScript expression `condition` is
    /// truthy, evaluating it every 25 ms. An expression that throws (an
    /// element not there yet) counts as false.
    pub async fn wait_for(&self, condition: &str, timeout: Duration) -> Result<()> {
        let script = format!(
            "try {{ return [!!({condition}), null]; }} catch (e) {{ return [false, String(e)]; }}"
        );
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.client.execute(&script, Vec::new()).await? {
                Value::Array(pair) if pair.first() == Some(&Value::Bool(true)) => return Ok(()),
                Value::Array(pair) => match pair.get(1) {
                    Some(Value::String(err)) => err.clone(),
                    _ => "false".to_owned(),
                },
                other => other.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(BrowserError::Timeout {
                    what: condition.to_owned(),
                    after: timeout,
                    last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`wait_for`](Self::wait_for) with the browser's timeout (15 s unless
    /// set otherwise).
    pub async fn wait(&self, condition: &str) -> Result<()> {
        self.wait_for(condition, self.options.timeout).await
    }

    /// The first element matching the CSS `selector`, waiting for it to
    /// exist.
    pub async fn find(&self, selector: &str) -> Result<Element> {
        self.wait(&format!("document.querySelector({})", js_string(selector)))
            .await?;
        Ok(self.client.find(Locator::Css(selector)).await?)
    }

    /// Click the element matching `selector`, as a user would (scrolled
    /// into view, with real pointer events).
    pub async fn click(&self, selector: &str) -> Result<()> {
        self.find(selector).await?.click().await?;
        Ok(())
    }

    /// Type `text` into the element matching `selector`, key by key.
    pub async fn type_text(&self, selector: &str, text: &str) -> Result<()> {
        self.find(selector).await?.send_keys(text).await?;
        Ok(())
    }

    /// Clear the text input matching `selector`.
    pub async fn clear(&self, selector: &str) -> Result<()> {
        self.find(selector).await?.clear().await?;
        Ok(())
    }

    /// Pick the option with `value` in the `<select>` matching `selector`.
    pub async fn select(&self, selector: &str, value: &str) -> Result<()> {
        self.find(selector).await?.select_by_value(value).await?;
        Ok(())
    }

    /// The rendered text of the element matching `selector`.
    pub async fn text(&self, selector: &str) -> Result<String> {
        Ok(self.find(selector).await?.text().await?)
    }

    /// The `textContent` of every element matching `selector`, in order
    /// (nothing waited for: an empty list when there is none).
    pub async fn texts(&self, selector: &str) -> Result<Vec<String>> {
        let value = self
            .execute(
                "return Array.from(document.querySelectorAll(arguments[0]), (e) => e.textContent);",
                vec![json!(selector)],
            )
            .await?;
        Ok(serde_json::from_value(value).unwrap_or_default())
    }

    /// Wait until the element matching `selector` has `text` as its
    /// (trimmed) `textContent`.
    pub async fn wait_for_text(&self, selector: &str, text: &str) -> Result<()> {
        self.wait(&format!(
            "document.querySelector({}).textContent.trim() === {}",
            js_string(selector),
            js_string(text)
        ))
        .await
    }

    /// Go back in the session's history.
    pub async fn back(&self) -> Result<()> {
        Ok(self.client.back().await?)
    }

    /// Go forward in the session's history.
    pub async fn forward(&self) -> Result<()> {
        Ok(self.client.forward().await?)
    }

    /// A PNG of the viewport, written to `path` (directories are created).
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> Result<()> {
        let png = self.client.screenshot().await?;
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// [`screenshot`](Self::screenshot) to `<target>/screenshots/<name>.png`
    /// (see [`screenshot_dir`]); returns the path.
    pub async fn save_screenshot(&self, name: &str) -> Result<PathBuf> {
        let path = screenshot_dir().join(format!("{name}.png"));
        self.screenshot(&path).await?;
        Ok(path)
    }

    /// End the session: Chromium quits. (Dropping the browser kills it.)
    pub async fn close(self) -> Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}

/// A DevTools protocol command, as chromedriver takes it.
#[derive(Debug)]
struct Cdp {
    command: String,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.command, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// A JavaScript string literal for `s`.
pub fn js_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Where [`Browser::save_screenshot`] writes: `$CARGO_TARGET_DIR/screenshots`
/// when that is set, else `target/screenshots` in the workspace of the
/// crate under test.
pub fn screenshot_dir() -> PathBuf {
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    };
    target.join("screenshots")
}

/// The outermost directory with a `Cargo.toml` declaring `[workspace]`,
/// looking up from the package under test (`CARGO_MANIFEST_DIR` as cargo
/// sets it when running tests), else the package itself.
fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    start
        .ancestors()
        .filter(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|toml| toml.contains("[workspace]"))
        })
        .last()
        .map_or_else(|| start.clone(), Path::to_path_buf)
}
