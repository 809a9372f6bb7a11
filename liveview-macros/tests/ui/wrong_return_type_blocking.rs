use liveview::{Consumer, Content, liveview_handler};

#[liveview_handler("name")]
fn name(_consumer: &Consumer, _content: Content) -> Option<String> {
    None
}

fn main() {}
