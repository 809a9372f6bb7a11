"""The quick start's two handlers, frame for frame.

- `say_hello` answers the caller with `<h1>Hello, NAME!</h1>` in `#greeting`,
  `World` when `form.name` is missing or empty;
- `notify_all` appends `<div class="notification">MESSAGE</div>` to
  `#notifications` on every connected page.
"""
from django.utils.html import escape
from liveview import liveview_handler, send


@liveview_handler("say_hello")
def say_hello(consumer, content):
    name = (content.get("form") or {}).get("name") or "World"
    send(consumer, {"target": "#greeting", "html": f"<h1>Hello, {escape(name)}!</h1>"})


@liveview_handler("notify_all")
def notify_all(consumer, content):
    message = (content.get("form") or {}).get("message") or ""
    send(
        consumer,
        {
            "target": "#notifications",
            "html": f'<div class="notification">{escape(message)}</div>',
            "append": True,
        },
        broadcast=True,
    )
