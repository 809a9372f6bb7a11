use liveview::html;

fn main() {
    let elapsed = std::time::Duration::from_secs(2);
    let _ = html!("<p>took {}</p>", elapsed);
}
