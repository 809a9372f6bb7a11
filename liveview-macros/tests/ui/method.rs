use liveview_macros::liveview_handler;

struct Page;

impl Page {
    #[liveview_handler("say_hello")]
    fn say_hello(&self, _content: ()) {}
}

fn main() {}
