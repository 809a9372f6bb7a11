use liveview_macros::liveview_handler;

#[liveview_handler]
async fn say_hello(_consumer: &(), _content: ()) {}

fn main() {}
