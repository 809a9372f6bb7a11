//! An in-memory stand-in for an application's database.
//!
//! The guide's handlers call these functions where a real application would
//! call sqlx, diesel or an HTTP API. They are `async` and fallible like real
//! data access, and they keep their rows in process memory, so the examples
//! run anywhere. Nothing here is part of LiveView for Rust.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{LazyLock, Mutex, MutexGuard};

use serde::Serialize;

/// A failure of the data layer.
#[derive(Debug)]
pub struct DbError(String);

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "database: {}", self.0)
    }
}

impl std::error::Error for DbError {}

/// A person with a profile page.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// The name in URLs.
    pub username: String,
    /// The name to show.
    pub name: String,
    /// A short biography.
    pub bio: String,
    /// The URL of the avatar image.
    pub avatar: String,
}

/// A blog post.
#[derive(Debug, Clone, Serialize)]
pub struct Post {
    /// Primary key.
    pub id: i64,
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
    /// Tags given when the post was created.
    pub tags: Vec<String>,
}

/// An article, owned by a user.
#[derive(Debug, Clone, Serialize)]
pub struct Article {
    /// Primary key.
    pub id: i64,
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
    /// The `User::id` of the author.
    pub author_id: i64,
}

/// A product of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct Product {
    /// Primary key.
    pub id: i64,
    /// The name.
    pub name: String,
    /// A description.
    pub description: String,
    /// The price, formatted.
    pub price: String,
}

/// One entry of an endless list.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Primary key.
    pub id: i64,
    /// The label.
    pub name: String,
}

/// A message sent through the contact form.
#[derive(Debug, Clone, Serialize)]
pub struct Contact {
    /// Primary key.
    pub id: i64,
    /// Who wrote.
    pub name: String,
    /// Where to answer.
    pub email: String,
    /// What they wrote.
    pub message: String,
}

#[derive(Debug)]
struct Tables {
    articles: BTreeMap<i64, Article>,
    comments: BTreeMap<i64, String>,
    notifications: BTreeMap<i64, bool>,
    contacts: Vec<Contact>,
    posts: Vec<Post>,
}

static TABLES: LazyLock<Mutex<Tables>> = LazyLock::new(|| {
    let articles = [
        (1, "Hello, LiveView", 1),
        (2, "HTML over the wire", 1),
        (3, "Rooms and broadcasts", 2),
    ]
    .into_iter()
    .map(|(id, title, author_id)| {
        let article = Article {
            id,
            title: title.to_owned(),
            body: format!("The text of article {id}."),
            author_id,
        };
        (id, article)
    })
    .collect();
    Mutex::new(Tables {
        articles,
        comments: (1..=20).map(|id| (id, format!("Comment {id}"))).collect(),
        notifications: (1..=20).map(|id| (id, false)).collect(),
        contacts: Vec::new(),
        posts: (1..=25)
            .map(|id| Post {
                id,
                title: format!("Post {id}"),
                body: format!("The text of post {id}."),
                tags: Vec::new(),
            })
            .collect(),
    })
});

fn tables() -> MutexGuard<'static, Tables> {
    TABLES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The user with `id`: users 1 (`ada`) and 2 (`grace`) exist.
pub async fn user(id: i64) -> Result<Option<User>, DbError> {
    let (username, name, bio) = match id {
        1 => ("ada", "Ada Lovelace", "Wrote the first program."),
        2 => ("grace", "Grace Hopper", "Wrote the first compiler."),
        _ => return Ok(None),
    };
    Ok(Some(User {
        id,
        username: username.to_owned(),
        name: name.to_owned(),
        bio: bio.to_owned(),
        avatar: format!("/static/avatars/{username}.png"),
    }))
}

/// The article with `id` (1 to 3 exist at first).
pub async fn article(id: i64) -> Result<Option<Article>, DbError> {
    Ok(tables().articles.get(&id).cloned())
}

/// Articles whose title contains `query`, ignoring case.
pub async fn articles_titled(query: &str) -> Result<Vec<Article>, DbError> {
    let query = query.to_lowercase();
    Ok(tables()
        .articles
        .values()
        .filter(|a| a.title.to_lowercase().contains(&query))
        .cloned()
        .collect())
}

/// Delete the article with `id`; whether it existed.
pub async fn delete_article(id: i64) -> Result<bool, DbError> {
    Ok(tables().articles.remove(&id).is_some())
}

/// Delete the comment with `id`; whether it existed.
pub async fn delete_comment(id: i64) -> Result<bool, DbError> {
    Ok(tables().comments.remove(&id).is_some())
}

/// Mark the notification with `id` archived; whether it existed.
pub async fn archive_notification(id: i64) -> Result<bool, DbError> {
    Ok(tables()
        .notifications
        .get_mut(&id)
        .map(|archived| *archived = true)
        .is_some())
}

/// Page `page` (from 1) of the posts, `per_page` at a time.
pub async fn posts(page: u32, per_page: u32) -> Result<Vec<Post>, DbError> {
    let start = (page.max(1) as usize - 1) * per_page as usize;
    Ok(tables()
        .posts
        .iter()
        .skip(start)
        .take(per_page as usize)
        .cloned()
        .collect())
}

/// Create a post and its tags together: all of it, or nothing when a tag is
/// empty or longer than 30 characters.
pub async fn create_post_with_tags(
    title: &str,
    body: &str,
    tags: &[&str],
) -> Result<Post, DbError> {
    if let Some(bad) = tags.iter().find(|t| t.is_empty() || t.chars().count() > 30) {
        return Err(DbError(format!("invalid tag {bad:?}; nothing was saved")));
    }
    let mut tables = tables();
    let post = Post {
        id: tables.posts.len() as i64 + 1,
        title: title.to_owned(),
        body: body.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    };
    tables.posts.push(post.clone());
    Ok(post)
}

fn catalogue() -> Vec<Product> {
    [
        (1, "Blue teapot", "Holds six cups.", "24.00"),
        (2, "Green teapot", "Holds four cups.", "21.00"),
        (3, "Tea cosy", "Keeps a teapot warm.", "12.50"),
        (4, "Milk jug", "For those who must.", "9.90"),
    ]
    .into_iter()
    .map(|(id, name, description, price)| Product {
        id,
        name: name.to_owned(),
        description: description.to_owned(),
        price: price.to_owned(),
    })
    .collect()
}

/// The product with `id` (1 to 4 exist).
pub async fn product(id: i64) -> Result<Option<Product>, DbError> {
    Ok(catalogue().into_iter().find(|p| p.id == id))
}

/// Products whose name contains `query`, ignoring case.
pub async fn products_named(query: &str) -> Result<Vec<Product>, DbError> {
    let query = query.to_lowercase();
    Ok(catalogue()
        .into_iter()
        .filter(|p| p.name.to_lowercase().contains(&query))
        .collect())
}

/// How many items the endless list has: 35.
pub async fn item_count() -> Result<u64, DbError> {
    Ok(35)
}

/// `limit` items from `offset`.
pub async fn items(offset: u64, limit: u64) -> Result<Vec<Item>, DbError> {
    let end = (offset + limit).min(item_count().await?);
    Ok((offset..end)
        .map(|i| Item {
            id: i as i64 + 1,
            name: format!("Item {}", i + 1),
        })
        .collect())
}

/// Store a contact message; its id.
pub async fn save_contact(name: &str, email: &str, message: &str) -> Result<i64, DbError> {
    let mut tables = tables();
    let id = tables.contacts.len() as i64 + 1;
    tables.contacts.push(Contact {
        id,
        name: name.to_owned(),
        email: email.to_owned(),
        message: message.to_owned(),
    });
    Ok(id)
}

/// Every contact message stored so far.
pub async fn contacts() -> Result<Vec<Contact>, DbError> {
    Ok(tables().contacts.clone())
}
