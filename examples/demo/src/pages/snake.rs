//! Snake, played on the server.
//!
//! Each game belongs to a room, named in the page's URL
//! (`/snake/{id}/`): every tab open on that URL watches and steers the
//! same snake. The arrow keys (or WASD, or the buttons on screen) call
//! `snake_turn`; while a game runs, a task of its own moves the snake at a
//! fixed rate and sends the board, rendered as HTML, to the room after
//! every move. The task stops when the game is over or nobody watches.
//!
//! Who watches is shown in `#viewers`, above the board, by the app's
//! presence callback ([`super::presence`]), on every process.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use liveview::{Broadcaster, Consumer, Content, Update, liveview_handler};
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;
use tokio::time::MissedTickBehavior;

use super::{FlashKind, Visitor, flash};
use crate::Demo;

/// Columns of the board.
pub const WIDTH: i32 = 20;
/// Rows of the board.
pub const HEIGHT: i32 = 20;
/// Points for each piece of food.
pub const POINTS: u32 = 10;
/// Turns remembered between two moves (quick double turns work).
const MAX_QUEUED_TURNS: usize = 3;

/// A direction of the snake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards row 0.
    Up,
    /// Towards the last row.
    Down,
    /// Towards column 0.
    Left,
    /// Towards the last column.
    Right,
}

impl Direction {
    /// `"up"`, `"down"`, `"left"` or `"right"`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            "left" => Some(Self::Left),
            "right" => Some(Self::Right),
            _ => None,
        }
    }

    fn delta(self) -> (i32, i32) {
        match self {
            Self::Up => (0, -1),
            Self::Down => (0, 1),
            Self::Left => (-1, 0),
            Self::Right => (1, 0),
        }
    }

    fn opposite(self) -> Self {
        match self {
            Self::Up => Self::Down,
            Self::Down => Self::Up,
            Self::Left => Self::Right,
            Self::Right => Self::Left,
        }
    }
}

/// Where a game is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Waiting for the first key.
    Ready,
    /// Moving.
    Running,
    /// Crashed (or the board is full).
    Over,
}

/// One game of snake: the rules, without any I/O.
///
/// ```
/// use demo::pages::snake::{Direction, Game, Phase};
///
/// let mut game = Game::new(7);
/// let (x, y) = game.head();
/// game.turn(Direction::Up);
/// assert_eq!(game.phase(), Phase::Running);
/// game.step();
/// assert_eq!(game.head(), (x, y - 1));
/// ```
#[derive(Debug, Clone)]
pub struct Game {
    /// Head first.
    snake: VecDeque<(i32, i32)>,
    heading: Direction,
    turns: VecDeque<Direction>,
    food: (i32, i32),
    score: u32,
    best: u32,
    phase: Phase,
    rng: u64,
}

impl Game {
    /// A new game, its food placed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut game = Self {
            snake: VecDeque::new(),
            heading: Direction::Right,
            turns: VecDeque::new(),
            food: (0, 0),
            score: 0,
            best: 0,
            phase: Phase::Ready,
            rng: seed | 1,
        };
        game.reset();
        game
    }

    fn reset(&mut self) {
        let (x, y) = (WIDTH / 2, HEIGHT / 2);
        self.snake = VecDeque::from([(x, y), (x - 1, y), (x - 2, y)]);
        self.heading = Direction::Right;
        self.turns.clear();
        self.score = 0;
        self.phase = Phase::Ready;
        self.place_food();
    }

    /// Start again from the middle, keeping the best score.
    pub fn restart(&mut self) {
        self.reset();
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The score of this game.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// The best score of this room.
    pub fn best(&self) -> u32 {
        self.best
    }

    /// The head's column and row.
    pub fn head(&self) -> (i32, i32) {
        self.snake[0]
    }

    /// The food's column and row.
    pub fn food(&self) -> (i32, i32) {
        self.food
    }

    /// The cells of the snake, head first.
    pub fn body(&self) -> impl Iterator<Item = (i32, i32)> + '_ {
        self.snake.iter().copied()
    }

    /// Turn at the next move. Turning back onto the snake, or the way it
    /// already goes, does nothing. The first turn starts the game.
    pub fn turn(&mut self, direction: Direction) {
        if self.phase == Phase::Over {
            return;
        }
        let last = self.turns.back().copied().unwrap_or(self.heading);
        if direction == last.opposite() || self.turns.len() >= MAX_QUEUED_TURNS {
            return;
        }
        if direction != last {
            self.turns.push_back(direction);
        }
        self.phase = Phase::Running;
    }

    /// One move: eat, grow, or crash into a wall or the snake.
    pub fn step(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        if let Some(turn) = self.turns.pop_front() {
            self.heading = turn;
        }
        let (dx, dy) = self.heading.delta();
        let (x, y) = self.head();
        let next = (x + dx, y + dy);
        let eats = next == self.food;
        let inside = (0..WIDTH).contains(&next.0) && (0..HEIGHT).contains(&next.1);
        // The tail moves out of the way unless the snake grows.
        let body = self.snake.len() - usize::from(!eats);
        if !inside || self.snake.iter().take(body).any(|&cell| cell == next) {
            self.game_over();
            return;
        }
        self.snake.push_front(next);
        if eats {
            self.score += POINTS;
            self.best = self.best.max(self.score);
            self.place_food();
        } else {
            self.snake.pop_back();
        }
    }

    fn game_over(&mut self) {
        self.phase = Phase::Over;
        self.best = self.best.max(self.score);
    }

    /// Put the food on a random free cell; a full board ends the game.
    fn place_food(&mut self) {
        let cells = (WIDTH * HEIGHT) as usize;
        let free = cells - self.snake.len();
        if free == 0 {
            self.game_over();
            return;
        }
        let mut pick = (self.random() % free as u64) as usize;
        for i in 0..cells {
            let cell = ((i as i32) % WIDTH, (i as i32) / WIDTH);
            if self.snake.contains(&cell) {
                continue;
            }
            if pick == 0 {
                self.food = cell;
                return;
            }
            pick -= 1;
        }
    }

    /// xorshift64*: plenty for placing food.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

// ---------------------------------------------------------------------------
// Rooms and their game loops
// ---------------------------------------------------------------------------

/// The games of this process, by room.
#[derive(Debug, Default)]
pub(crate) struct Games {
    rooms: Mutex<HashMap<String, Arc<GameRoom>>>,
}

/// One room's game, and whether its loop runs.
#[derive(Debug)]
pub(crate) struct GameRoom {
    game: Mutex<Game>,
    ticking: AtomicBool,
}

impl GameRoom {
    fn game(&self) -> MutexGuard<'_, Game> {
        self.game.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Games {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Arc<GameRoom>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The game of `room`, started if there is none. Games of rooms that
    /// nobody watches any more are forgotten on the way.
    pub(crate) fn room(&self, room: &str, broadcaster: &Broadcaster) -> Arc<GameRoom> {
        let mut rooms = self.rooms();
        rooms.retain(|name, game| {
            name == room || game.ticking.load(Ordering::Acquire) || viewers(broadcaster, name) > 0
        });
        rooms
            .entry(room.to_owned())
            .or_insert_with(|| {
                Arc::new(GameRoom {
                    game: Mutex::new(Game::new(seed(room))),
                    ticking: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// The game of `room`, if it has one.
    pub(crate) fn get(&self, room: &str) -> Option<Arc<GameRoom>> {
        self.rooms().get(room).cloned()
    }
}

/// The first game of a room is the same whoever loads it first, so the
/// page and the game agree on where the food is.
fn seed(room: &str) -> u64 {
    room.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn viewers(broadcaster: &Broadcaster, room: &str) -> usize {
    broadcaster.local_connections(room)
}

/// Run the game loop of `room` unless it runs already: a move, then the
/// board to the room, at the demo's tick rate, while the game runs and
/// someone in this process watches.
fn ensure_ticking(demo: &Demo, name: &str, room: &Arc<GameRoom>, broadcaster: Broadcaster) {
    if room.ticking.swap(true, Ordering::AcqRel) {
        return;
    }
    let (demo, name, room) = (demo.clone(), name.to_owned(), room.clone());
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(demo.config().snake_tick);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            let watching = viewers(&broadcaster, &name);
            let (screen, running) = {
                let mut game = room.game();
                game.step();
                (render_screen(&demo, &game), game.phase() == Phase::Running)
            };
            match screen {
                Ok(html) => {
                    let update = Update::new("#snake-screen").html(html);
                    if let Err(err) = broadcaster.send_to_room(&name, update).await {
                        tracing::warn!(room = %name, error = %err, "a snake frame reached this process only");
                    }
                }
                Err(err) => {
                    tracing::error!(room = %name, error = %err, "rendering the snake board failed");
                    room.ticking.store(false, Ordering::Release);
                    return;
                }
            }
            if running && watching > 0 {
                continue;
            }
            room.ticking.store(false, Ordering::Release);
            // A turn between the last move and now may have started a new
            // game that saw the loop still running: keep it going then.
            let restarted = room.game().phase() == Phase::Running && watching > 0;
            if !restarted || room.ticking.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    });
}

/// One cell of the board for the template, 1-based for CSS grid lines.
#[derive(Debug, Serialize)]
struct Cell {
    col: i32,
    row: i32,
    kind: &'static str,
}

fn render_screen(demo: &Demo, game: &Game) -> Result<String, minijinja::Error> {
    let mut cells: Vec<Cell> = game
        .body()
        .enumerate()
        .map(|(i, (x, y))| Cell {
            col: x + 1,
            row: y + 1,
            kind: if i == 0 { "head" } else { "body" },
        })
        .collect();
    let (fx, fy) = game.food();
    cells.push(Cell {
        col: fx + 1,
        row: fy + 1,
        kind: "food",
    });
    let (hx, hy) = game.head();
    demo.templates().render(
        "snake/screen.html",
        context! {
            cells => Serde(cells),
            width => WIDTH,
            height => HEIGHT,
            head => format!("{hx},{hy}"),
            score => game.score(),
            best => game.best(),
            phase => Serde(game.phase()),
        },
    )
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// The connection's game room, or a message that snake is played on the
/// snake page (a raw call from another page's room).
fn game_room(consumer: &Consumer, demo: &Demo) -> liveview::Result<Option<Arc<GameRoom>>> {
    if !consumer.room().starts_with(ROOM_PREFIX) {
        consumer.send(flash(
            demo,
            FlashKind::Error,
            "Snake is played on the snake page.",
        )?)?;
        return Ok(None);
    }
    Ok(Some(
        demo.games().room(consumer.room(), &consumer.broadcaster()),
    ))
}

async fn send_screen(consumer: &Consumer, demo: &Demo, room: &GameRoom) -> liveview::Result {
    let html = render_screen(demo, &room.game())?;
    consumer
        .send_to_room(consumer.room(), Update::new("#snake-screen").html(html))
        .await?;
    Ok(())
}

/// A tab opened the game, or its client resynced after a disconnect
/// (`data-liveview-init` of the board): show the room the board, and
/// resume a game left running.
#[liveview_handler("snake_join")]
pub async fn join(consumer: &Consumer, _content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    let Some(room) = game_room(consumer, demo)? else {
        return Ok(());
    };
    send_screen(consumer, demo, &room).await?;
    if room.game().phase() == Phase::Running {
        ensure_ticking(demo, consumer.room(), &room, consumer.broadcaster());
    }
    Ok(())
}

/// Steer: `data-data-direction` is `up`, `down`, `left` or `right`. The
/// first turn starts the game loop.
#[liveview_handler("snake_turn")]
pub async fn turn(consumer: &Consumer, content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    let Some(direction) = content.data.str("direction").and_then(Direction::parse) else {
        consumer.send(flash(
            demo,
            FlashKind::Error,
            "Unknown direction: use the arrow keys.",
        )?)?;
        return Ok(());
    };
    let Some(room) = game_room(consumer, demo)? else {
        return Ok(());
    };
    let running = {
        let mut game = room.game();
        game.turn(direction);
        game.phase() == Phase::Running
    };
    if running {
        ensure_ticking(demo, consumer.room(), &room, consumer.broadcaster());
    }
    Ok(())
}

/// Start a new game in the room.
#[liveview_handler("snake_restart")]
pub async fn restart(consumer: &Consumer, _content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    let Some(room) = game_room(consumer, demo)? else {
        return Ok(());
    };
    room.game().restart();
    send_screen(consumer, demo, &room).await
}

// ---------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------

/// Rooms of snake games start with this; the rest is the id in the URL.
pub const ROOM_PREFIX: &str = "snake-";

/// `GET /snake/` (a new game) and `GET /snake/{id}/` (a game to join).
pub fn routes() -> Router<Demo> {
    Router::new()
        .route("/snake/", get(new_game))
        .route("/snake/{id}/", get(page))
}

async fn new_game() -> Redirect {
    let id = &liveview::template::room_uuid()[..12];
    Redirect::to(&format!("/snake/{id}/"))
}

/// Whether `id` can name a game: 1 to 40 letters, digits, `-` or `_`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn page(
    State(demo): State<Demo>,
    visitor: Visitor,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !is_valid_id(&id) {
        return super::page_with_status(
            &demo,
            &visitor,
            StatusCode::NOT_FOUND,
            "not_found.html",
            context! {},
        );
    }
    let room = format!("{ROOM_PREFIX}{id}");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8000");
    // The page shows the game as it is; the init call then shows the room
    // the board again, and the connection tells it someone joined.
    let screen = match demo.games().get(&room) {
        Some(game_room) => render_screen(&demo, &game_room.game()),
        None => render_screen(&demo, &Game::new(seed(&room))),
    };
    let screen = match screen {
        Ok(screen) => screen,
        Err(err) => {
            tracing::error!(error = %err, "rendering the snake board failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    super::page(
        &demo,
        &visitor,
        "snake/page.html",
        context! {
            nav => "snake",
            room,
            share_url => format!("http://{host}/snake/{id}/"),
            screen => minijinja::Value::from_safe_string(screen),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snake_crashes_into_the_wall() {
        let mut game = Game::new(1);
        game.turn(Direction::Up);
        for _ in 0..HEIGHT {
            game.step();
        }
        assert_eq!(game.phase(), Phase::Over);
        assert_eq!(game.head().1, 0);
    }

    #[test]
    fn reversing_is_ignored_and_turns_queue() {
        let mut game = Game::new(1);
        game.turn(Direction::Left);
        assert_eq!(game.phase(), Phase::Ready, "left would run into the body");
        game.turn(Direction::Up);
        game.turn(Direction::Left);
        let (x, y) = game.head();
        game.step();
        game.step();
        assert_eq!(game.head(), (x - 1, y - 1));
    }

    #[test]
    fn eating_grows_and_scores() {
        let mut game = Game::new(3);
        let (x, y) = game.head();
        game.food = (x + 1, y);
        game.turn(Direction::Right);
        game.step();
        assert_eq!(game.score(), POINTS);
        assert_eq!(game.body().count(), 4);
        assert_ne!(game.food(), (x + 1, y));
        assert!(!game.body().any(|c| c == game.food()));
    }

    #[test]
    fn the_snake_crashes_into_itself() {
        let mut game = Game::new(5);
        game.snake = VecDeque::from([(5, 5), (4, 5), (3, 5), (3, 6), (4, 6), (5, 6), (6, 6)]);
        game.food = (0, 0);
        game.turn(Direction::Down);
        game.step();
        assert_eq!(game.phase(), Phase::Over);
        assert_eq!(game.best(), 0);
    }

    #[test]
    fn restart_keeps_the_best_score() {
        let mut game = Game::new(3);
        let (x, y) = game.head();
        game.food = (x + 1, y);
        game.turn(Direction::Right);
        game.step();
        game.restart();
        assert_eq!(
            (game.score(), game.best(), game.phase()),
            (0, POINTS, Phase::Ready)
        );
    }

    #[test]
    fn ids_are_checked() {
        assert!(is_valid_id("3f2a9c1b7d4e"));
        assert!(is_valid_id("friday-game_2"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("<script>"));
        assert!(!is_valid_id(&"x".repeat(41)));
    }
}
