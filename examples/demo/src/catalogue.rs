//! The product catalogue of the live search, generated the same way on
//! every machine: no download, no randomness.

use crate::db::Product;

const STYLES: &[&str] = &[
    "Classic",
    "Compact",
    "Cozy",
    "Elegant",
    "Ergonomic",
    "Foldable",
    "Handmade",
    "Minimal",
    "Modern",
    "Nordic",
    "Portable",
    "Rustic",
    "Sleek",
    "Sturdy",
    "Vintage",
];

const MATERIALS: &[&str] = &[
    "Bamboo", "Brass", "Ceramic", "Copper", "Cork", "Cotton", "Glass", "Leather", "Linen",
    "Marble", "Oak", "Slate", "Steel", "Walnut", "Wool",
];

/// Things, each with its category.
const THINGS: &[(&str, &str)] = &[
    ("Kettle", "Kitchen"),
    ("Teapot", "Kitchen"),
    ("Skillet", "Kitchen"),
    ("Cutting Board", "Kitchen"),
    ("Mug", "Kitchen"),
    ("Salad Bowl", "Kitchen"),
    ("Desk Lamp", "Lighting"),
    ("Floor Lamp", "Lighting"),
    ("Pendant Light", "Lighting"),
    ("Lantern", "Lighting"),
    ("Chair", "Furniture"),
    ("Stool", "Furniture"),
    ("Bookshelf", "Furniture"),
    ("Side Table", "Furniture"),
    ("Bench", "Furniture"),
    ("Notebook", "Office"),
    ("Pen Holder", "Office"),
    ("Monitor Stand", "Office"),
    ("Desk Organizer", "Office"),
    ("Planter", "Garden"),
    ("Watering Can", "Garden"),
    ("Bird Feeder", "Garden"),
    ("Blanket", "Textiles"),
    ("Cushion", "Textiles"),
    ("Rug", "Textiles"),
];

/// How many different products there can be.
pub const MAX_PRODUCTS: usize = STYLES.len() * MATERIALS.len() * THINGS.len();

/// `count` different products (at most [`MAX_PRODUCTS`]), with ids from 1,
/// always the same ones in the same order.
///
/// ```
/// let products = demo::catalogue::generate(3);
/// assert_eq!(products.len(), 3);
/// assert_eq!(products, demo::catalogue::generate(3));
/// ```
pub fn generate(count: usize) -> Vec<Product> {
    // Walk the combinations with a stride coprime to their number: a fixed
    // shuffle that visits each one once.
    const STRIDE: usize = 2_347;
    debug_assert_eq!(gcd(STRIDE, MAX_PRODUCTS), 1);
    (0..count.min(MAX_PRODUCTS))
        .map(|i| {
            let n = (i * STRIDE + 11) % MAX_PRODUCTS;
            let style = STYLES[n % STYLES.len()];
            let material = MATERIALS[(n / STYLES.len()) % MATERIALS.len()];
            let (thing, category) = THINGS[n / (STYLES.len() * MATERIALS.len())];
            let id = i64::try_from(i).unwrap_or(i64::MAX) + 1;
            Product {
                id,
                name: format!("{style} {material} {thing}"),
                category: category.to_owned(),
                price_cents: price(n),
            }
        })
        .collect()
}

/// A price from 9.00 to 298.99, ending in .00, .50 or .99.
fn price(n: usize) -> i64 {
    let mut x = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let euros = 9 + (x % 290) as i64;
    let cents = [0, 50, 99][((x >> 20) % 3) as usize];
    euros * 100 + cents
}

const fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prices_in_range() {
        let products = generate(MAX_PRODUCTS);
        let mut names: Vec<_> = products.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MAX_PRODUCTS);
        assert!(
            products
                .iter()
                .all(|p| (900..=29_899).contains(&p.price_cents))
        );
    }

    #[test]
    fn more_than_exist_is_all_of_them() {
        assert_eq!(generate(MAX_PRODUCTS + 10).len(), MAX_PRODUCTS);
    }
}
