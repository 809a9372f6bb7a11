use liveview_macros::liveview_handler;

#[liveview_handler("say_hello")]
async fn say_hello(_consumer: u32, _content: ()) {}

fn main() {}
