use liveview::html;

fn main() {
    let _ = html!("<p>{}</p>", "used", "left over");
}
