use liveview::html;

fn main() {
    let _ = html!("<style>p { color: red }</style>");
}
