//! File types recognised by their first bytes ("magic numbers"), never by
//! their name or by what the browser claims.

use std::fmt;

/// A file type recognised by its content.
///
/// ```
/// use liveview::upload::FileType;
///
/// assert_eq!(FileType::detect(b"\x89PNG\r\n\x1a\n...."), Some(FileType::Png));
/// assert_eq!(FileType::detect(b"just some text"), None);
/// assert_eq!(FileType::Jpeg.mime(), "image/jpeg");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileType {
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// GIF image (87a or 89a).
    Gif,
    /// WebP image (a RIFF container of type `WEBP`).
    WebP,
    /// PDF document.
    Pdf,
}

impl FileType {
    /// The images browsers show: PNG, JPEG, GIF and WebP.
    pub const IMAGES: [FileType; 4] =
        [FileType::Png, FileType::Jpeg, FileType::Gif, FileType::WebP];

    /// How many leading bytes [`detect`](Self::detect) needs at most.
    pub const HEAD: usize = 12;

    /// The type whose signature `head` (the file's first bytes) starts
    /// with, if any.
    pub fn detect(head: &[u8]) -> Option<FileType> {
        if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(FileType::Png)
        } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(FileType::Jpeg)
        } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            Some(FileType::Gif)
        } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
            Some(FileType::WebP)
        } else if head.starts_with(b"%PDF-") {
            Some(FileType::Pdf)
        } else {
            None
        }
    }

    /// The MIME type, e.g. `image/png`.
    pub fn mime(self) -> &'static str {
        match self {
            FileType::Png => "image/png",
            FileType::Jpeg => "image/jpeg",
            FileType::Gif => "image/gif",
            FileType::WebP => "image/webp",
            FileType::Pdf => "application/pdf",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            FileType::Png => "png",
            FileType::Jpeg => "jpg",
            FileType::Gif => "gif",
            FileType::WebP => "webp",
            FileType::Pdf => "pdf",
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

#[cfg(test)]
mod tests {
    use super::FileType;

    #[test]
    fn signatures() {
        assert_eq!(
            FileType::detect(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(FileType::Jpeg)
        );
        assert_eq!(FileType::detect(b"GIF89a\x01\x00"), Some(FileType::Gif));
        assert_eq!(
            FileType::detect(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(FileType::WebP)
        );
        assert_eq!(FileType::detect(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(FileType::detect(b"%PDF-1.7"), Some(FileType::Pdf));
        assert_eq!(FileType::detect(b"\x89PN"), None);
        assert_eq!(FileType::detect(b""), None);
    }
}
