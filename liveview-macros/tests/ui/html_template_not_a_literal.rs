use liveview::html;

fn main() {
    let template = "<p>{}</p>";
    let _ = html!(template, 1);
}
