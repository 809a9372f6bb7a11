use liveview::html;

fn main() {
    let name = "Ann";
    let _ = html!("<p>{nmae}</p>");
    let _ = name;
}
