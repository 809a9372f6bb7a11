use liveview_macros::liveview_handler;

#[liveview_handler("say_hello")]
async fn say_hello<T>(_consumer: &T, _content: ()) {}

fn main() {}
