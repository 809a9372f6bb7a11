//! The quick start in a real headless Chromium: greet, then notify a second
//! browser.

use liveview::LiveView;
use liveview::testing::TestServer;
use liveview::testing::browser::Browser;

// The handlers live in the library crate; name it so they are linked.
use quickstart as _;

#[tokio::test]
async fn quickstart_greets_and_notifies_every_open_page() {
    let server = TestServer::start(LiveView::builder(), quickstart::routes())
        .await
        .expect("the server starts");
    let ada = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let result = async {
        ada.open(&server.url("/")).await?;
        ada.type_text("input[name=name]", "Ada").await?;
        ada.click("button[data-liveview-function=say_hello]")
            .await?;
        ada.wait_for_text("#greeting", "Hello, Ada!").await?;
        assert_eq!(ada.text("#greeting h1").await?, "Hello, Ada!");

        // A second, independent browser on the same page.
        let bob = ada.new_session().await?;
        bob.open(&server.url("/")).await?;
        assert_ne!(
            ada.eval("LiveView.room").await?,
            bob.eval("LiveView.room").await?
        );
        assert_eq!(
            bob.text("#greeting").await?,
            "",
            "the greeting was Ada's only"
        );

        ada.type_text("input[name=message]", "Deploy at 5 pm")
            .await?;
        ada.click("form[data-liveview-function=notify_all] button[type=submit]")
            .await?;
        for page in [&ada, &bob] {
            page.wait_for_text("#notifications .notification", "Deploy at 5 pm")
                .await?;
        }
        // The form was not submitted natively: the page is still live.
        assert_eq!(
            ada.eval("LiveView.connected").await?,
            serde_json::json!(true)
        );
        bob.save_screenshot("quickstart-second-session").await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    let shot = ada.save_screenshot("quickstart").await;
    if let Err(err) = result {
        panic!("quickstart in the browser: {err}");
    }
    shot.expect("the screenshot is saved");
}
