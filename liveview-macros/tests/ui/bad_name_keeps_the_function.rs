// A wrong attribute is the only error: the function and its imports are
// still there, so no "unused import" or "cannot find function" follows.
#![deny(unused_imports)]

use liveview::{Consumer, Content, Update, liveview_handler};

#[liveview_handler("say hello")]
async fn say_hello(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(Update::new("#greeting").html("Hello"))?;
    Ok(())
}

fn main() {
    let _ = say_hello;
}
