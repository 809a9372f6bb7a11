use liveview_macros::liveview_handler;

#[liveview_handler("say_hello")]
struct SayHello;

fn main() {}
