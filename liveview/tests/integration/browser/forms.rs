//! Form collection: what each kind of control sends.

use serde_json::json;

use super::browser_test;

#[tokio::test]
async fn form_collection_sends_each_input_type() {
    let body = r##"
<form id="f" data-action="submit->page#run" data-liveview-function="b_log" data-data-which="form">
  <input type="text" name="text" value="hello">
  <input type="email" name="email" value="ada@example.com">
  <input type="number" name="num" value="3">
  <input type="hidden" name="hidden" value="h">
  <input type="password" name="pw" value="secret">
  <textarea name="bio">line one
line two</textarea>
  <select name="color">
    <option value="red">Red</option><option value="green" selected>Green</option>
  </select>
  <select name="tags" multiple>
    <option value="a" selected>A</option><option value="b">B</option><option value="c" selected>C</option>
  </select>
  <label><input type="checkbox" name="agree" checked> agree</label>
  <label><input type="checkbox" id="news" name="news"> news</label>
  <label><input type="checkbox" name="langs" value="rust" checked> rust</label>
  <label><input type="checkbox" name="langs" value="go"> go</label>
  <label><input type="checkbox" id="lang-js" name="langs" value="js"> js</label>
  <label><input type="radio" name="size" value="s"> s</label>
  <label><input type="radio" name="size" value="m" checked> m</label>
  <label><input type="radio" id="size-l" name="size" value="l"> l</label>
  <label><input type="radio" name="unset" value="x"> unset</label>
  <input type="file" id="upload" name="upload">
  <input type="text" name="off" value="disabled" disabled>
  <button id="send" type="submit" name="go" value="1">Send</button>
</form>
"##;
    browser_test(
        "form_collection_sends_each_input_type",
        body,
        async |page| {
            let b = &page.browser;
            // Change some of the controls as a user would.
            b.type_text("input[name=text]", " world").await?;
            b.select("select[name=color]", "red").await?;
            b.click("#news").await?;
            b.click("#lang-js").await?;
            b.click("#size-l").await?;
            let file =
                std::env::temp_dir().join(format!("liveview-upload-{}.txt", std::process::id()));
            std::fs::write(&file, "file content")?;
            b.type_text("#upload", &file.display().to_string()).await?;
            assert_eq!(
                b.eval(r##"document.getElementById("upload").files.length"##)
                    .await?,
                json!(1),
                "a file is chosen"
            );

            b.click("#send").await?;
            let call = page.wait_call(1, "form").await?;
            let _ = std::fs::remove_file(&file);
            assert_eq!(
                call["form"],
                json!({
                    "text": "hello world",
                    "email": "ada@example.com",
                    "num": "3",
                    "hidden": "h",
                    "pw": "secret",
                    "bio": "line one\nline two",
                    "color": "red",
                    "tags": ["a", "c"],
                    "agree": true,
                    "news": true,
                    "langs": ["rust", "js"],
                    "size": "l",
                    "go": "1",
                }),
                "no file, no disabled control, no unchecked radio group; the submitter's name and value"
            );
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn outside_a_form_the_controls_of_the_container_are_sent() {
    let body = r##"
<div class="row">
  <input name="firstName" value="Ada">
  <input name="lastName" value="Lovelace">
  <button id="greet" data-action="click->page#run" data-liveview-function="b_log" data-data-which="row">greet</button>
</div>
<div><input name="unrelated" value="not sent"></div>
<div id="search-box">
  <input id="q" name="q" data-action="input->page#run" data-liveview-function="b_log" data-data-which="search">
  <input type="checkbox" id="flag" name="flag" data-action="change->page#run" data-liveview-function="b_log" data-data-which="flag">
</div>
<div>
  <form><input name="inner" value="another form's"></form>
  <input name="outer" value="o">
  <button id="mixed" data-action="click->page#run" data-liveview-function="b_log" data-data-which="mixed">mixed</button>
</div>
"##;
    browser_test(
        "outside_a_form_the_controls_of_the_container_are_sent",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#greet").await?;
            let call = page.wait_call(1, "row").await?;
            assert_eq!(
                call["form"],
                json!({"first_name": "Ada", "last_name": "Lovelace"}),
                "the row's inputs (camelCase names become snake_case), nothing else"
            );

            b.type_text("#q", "x").await?;
            let call = page.wait_call(2, "search").await?;
            assert_eq!(call["form"], json!({"q": "x", "flag": false}));
            b.click("#flag").await?;
            let call = page.wait_call(3, "flag").await?;
            assert_eq!(call["form"], json!({"q": "x", "flag": true}));

            b.click("#mixed").await?;
            let call = page.wait_call(4, "mixed").await?;
            assert_eq!(
                call["form"],
                json!({"outer": "o"}),
                "controls of another form are not sent"
            );
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_element_directly_in_the_page_sends_only_its_own_value() {
    // The page itself is no container: an init element or a control
    // directly under <body> never sends the page's other loose controls.
    let body = r##"
<input type="password" name="pw" value="secret">
<div data-liveview-init="b_log" data-data-which="init"></div>
<input id="q" name="q" data-action="input->page#run" data-liveview-function="b_log" data-data-which="q">
"##;
    browser_test(
        "an_element_directly_in_the_page_sends_only_its_own_value",
        body,
        async |page| {
            let call = page.wait_call(1, "init").await?;
            assert_eq!(call["form"], json!({}));
            page.browser.type_text("#q", "x").await?;
            let call = page.wait_call(2, "q").await?;
            assert_eq!(call["form"], json!({"q": "x"}));
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn names_ending_in_brackets_are_always_lists() {
    let body = r##"
<form data-action="submit->page#run" data-liveview-function="b_log" data-data-which="form">
  <label><input type="checkbox" name="one[]" value="a" checked> one box, checked</label>
  <label><input type="checkbox" name="none[]" value="b"> one box, unchecked</label>
  <label><input type="checkbox" name="agree"> a plain box</label>
  <input name="tags[]" value="x"><input name="tags[]" value="y">
  <button id="send">send</button>
</form>
"##;
    browser_test(
        "names_ending_in_brackets_are_always_lists",
        body,
        async |page| {
            page.browser.click("#send").await?;
            let call = page.wait_call(1, "form").await?;
            assert_eq!(
                call["form"],
                json!({"one": ["a"], "none": [], "agree": false, "tags": ["x", "y"]})
            );
            Ok(())
        },
    )
    .await;
}
