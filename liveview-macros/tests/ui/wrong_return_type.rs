use liveview::{Consumer, Content, liveview_handler};

#[liveview_handler("count")]
async fn count(_consumer: &Consumer, _content: Content) -> usize {
    42
}

fn main() {}
