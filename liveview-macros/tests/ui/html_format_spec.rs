use liveview::html;

fn main() {
    let count = 3;
    let _ = html!("<p>{count:>5}</p>");
}
