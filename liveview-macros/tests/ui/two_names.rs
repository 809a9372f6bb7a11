use liveview_macros::liveview_handler;

#[liveview_handler("say_hello", "greet")]
async fn say_hello(_consumer: &(), _content: ()) {}

fn main() {}
