use liveview::html;

fn main() {
    let _ = html!("<p>{who}</p>", who = "Ann", whom = "Bo");
}
