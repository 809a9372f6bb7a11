use liveview::html;

fn main() {
    let _ = html!("<p>{} and {}</p>", "one");
}
