//! Letters: a workflow's LETTER action rendered to PDF (A4, the PDF base fonts, so nothing is
//! embedded) and handed to a postal provider. The default provider keeps the document for
//! download (`letter_document`); a real one (a print-and-post service) implements
//! [`PostalProvider`] the same way.

use chrono::{DateTime, NaiveDate, Utc};
use entity::letter_document;
use futures_util::future::BoxFuture;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use sea_orm::{ActiveModelTrait, DatabaseTransaction, IntoActiveModel};
use uuid::Uuid;

use crate::error::ApiResult;

/// What a letter says and where it goes.
#[derive(Clone, Debug)]
pub struct Letter {
    /// The account (the letterhead).
    pub from_organisation: String,
    /// The user it is sent as.
    pub from_name: String,
    pub to_name: String,
    pub address_lines: Vec<String>,
    pub date: NaiveDate,
    pub subject: Option<String>,
    pub body: String,
}

/// Where letters go once rendered.
pub trait PostalProvider: Send + Sync {
    /// Posts a rendered letter for `planned_action_id` (in the transaction that marks the
    /// action done); answers the id of the document kept.
    fn post<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        account_id: Uuid,
        planned_action_id: Uuid,
        letter: &'a Letter,
        pdf: Vec<u8>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, ApiResult<Uuid>>;
}

/// The default provider: the document is stored for download (`PlannedAction.letters`).
pub struct StoreForDownload;

impl PostalProvider for StoreForDownload {
    fn post<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        account_id: Uuid,
        planned_action_id: Uuid,
        letter: &'a Letter,
        pdf: Vec<u8>,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, ApiResult<Uuid>> {
        Box::pin(async move {
            let name: String = letter.to_name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            let row = letter_document::Model {
                id: Uuid::now_v7(),
                account_id,
                planned_action_id,
                file_name: format!("letter-{}-{}.pdf", letter.date, name.trim_matches('-')),
                pdf,
                created_at: now,
            };
            Ok(row.into_active_model().reset_all().insert(txn).await?.id)
        })
    }
}

/// The provider letters go through.
pub fn provider() -> &'static dyn PostalProvider {
    &StoreForDownload
}

/// The letters posted for a planned action of the caller's account (users of the account,
/// READ keys), oldest first.
pub async fn documents_of(db: &impl sea_orm::ConnectionTrait, caller: &crate::auth::Caller, planned_action_id: Uuid) -> ApiResult<Vec<letter_document::Model>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    caller.require_read()?;
    Ok(letter_document::Entity::find()
        .filter(letter_document::Column::AccountId.eq(caller.account_id))
        .filter(letter_document::Column::PlannedActionId.eq(planned_action_id))
        .order_by_asc(letter_document::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Text as the base fonts' WinAnsiEncoding holds it: Latin-1 as is, the usual typographic
/// signs mapped, anything else a question mark.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '–' => 0x96,
            '—' => 0x97,
            '\t' => b' ',
            _ => b'?',
        })
        .collect()
}

/// Lines of at most `width` characters, broken at spaces (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

const PAGE: Rect = Rect { x1: 0.0, y1: 0.0, x2: 595.0, y2: 842.0 };
const MARGIN: f32 = 56.0;
const LEADING: f32 = 14.0;

/// The letter as a PDF: letterhead and sender, date, the recipient's address block, the
/// subject in bold, the body wrapped over as many pages as it needs.
pub fn render(letter: &Letter) -> Vec<u8> {
    // Lines per page, each with its font and position.
    struct Line {
        bold: bool,
        size: f32,
        x: f32,
        y: f32,
        text: String,
    }
    let mut pages: Vec<Vec<Line>> = vec![Vec::new()];
    let mut y = PAGE.y2 - MARGIN;
    let put = |pages: &mut Vec<Vec<Line>>, y: &mut f32, bold: bool, size: f32, x: f32, text: String| {
        if *y < MARGIN {
            pages.push(Vec::new());
            *y = PAGE.y2 - MARGIN;
        }
        pages.last_mut().expect("a page").push(Line { bold, size, x, y: *y, text });
        *y -= LEADING;
    };
    put(&mut pages, &mut y, true, 12.0, MARGIN, letter.from_organisation.clone());
    put(&mut pages, &mut y, false, 10.0, MARGIN, letter.from_name.clone());
    y -= LEADING;
    put(&mut pages, &mut y, false, 10.0, 400.0, letter.date.format("%-d %B %Y").to_string());
    y = PAGE.y2 - 180.0;
    put(&mut pages, &mut y, false, 11.0, 330.0, letter.to_name.clone());
    for l in &letter.address_lines {
        put(&mut pages, &mut y, false, 11.0, 330.0, l.clone());
    }
    y = PAGE.y2 - 300.0;
    if let Some(subject) = &letter.subject {
        for l in wrap(subject, 80) {
            put(&mut pages, &mut y, true, 11.0, MARGIN, l);
        }
        y -= LEADING;
    }
    for l in wrap(&letter.body, 90) {
        put(&mut pages, &mut y, false, 11.0, MARGIN, l);
    }

    let mut pdf = Pdf::new();
    let (catalog, tree, regular, bold) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4));
    let page_ids: Vec<Ref> = (0..pages.len()).map(|i| Ref::new(5 + 2 * i as i32)).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(page_ids.iter().copied()).count(pages.len() as i32);
    pdf.type1_font(regular).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    for (i, lines) in pages.iter().enumerate() {
        let (page_id, content_id) = (page_ids[i], Ref::new(6 + 2 * i as i32));
        let mut page = pdf.page(page_id);
        page.media_box(PAGE).parent(tree).contents(content_id);
        page.resources().fonts().pair(Name(b"F1"), regular).pair(Name(b"F2"), bold);
        page.finish();
        let mut content = Content::new();
        for line in lines {
            let bytes = win_ansi(&line.text);
            content.begin_text().set_font(Name(if line.bold { b"F2" } else { b"F1" }), line.size).next_line(line.x, line.y).show(Str(&bytes)).end_text();
        }
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_at_spaces() {
        let lines = wrap("one two three four five", 9);
        assert_eq!(lines, vec!["one two", "three", "four five"]);
        assert_eq!(wrap("a\n\nb", 10), vec!["a", "", "b"]);
    }

    #[test]
    fn text_is_encoded_for_the_base_fonts() {
        assert_eq!(win_ansi("Café – “ok” 5€"), b"Caf\xe9 \x96 \x93ok\x94 5\x80".to_vec());
        assert_eq!(win_ansi("日本"), b"??".to_vec());
    }
}
