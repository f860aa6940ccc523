//! Reading drug names out of normalized order text: a tiny lexer (words, numbers, slashes) and
//! a strength parser. Used at load time for the product table's RxNorm names and at call time
//! for free text only, so the per-call cost is one pass over a short string.

use super::{ProductForm, Strength, StrengthUnit};
use crate::domain::codes::is_kept_byte;

/// A token of a lexed text. Words and numbers hold their place in the text (byte offsets), not
/// the text itself, so that one token buffer can serve every text an evaluation reads
/// (`super::Buffers`); [`Lexed`] pairs the tokens with their text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Token {
    Word(Span),
    Number(Span, f64),
    Slash,
}

/// Byte offsets `start..end` of a token in its text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Span {
    start: usize,
    end: usize,
}

/// A text and its tokens, as the matchers read them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lexed<'a> {
    pub(crate) text: &'a str,
    pub(crate) tokens: &'a [Token],
}

impl<'a> Lexed<'a> {
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    fn span(&self, span: Span) -> &'a str {
        &self.text[span.start..span.end]
    }

    /// The word at `i`, if the token there is a word.
    pub(crate) fn word(&self, i: usize) -> Option<&'a str> {
        match self.tokens.get(i)? {
            Token::Word(s) => Some(self.span(*s)),
            _ => None,
        }
    }

    /// [`Lexed::word`] as bytes, for matching against fixed words: slicing the bytes skips the
    /// two char-boundary checks of slicing the `str` (a span always lies on boundaries).
    pub(crate) fn word_bytes(&self, i: usize) -> Option<&'a [u8]> {
        match self.tokens.get(i)? {
            Token::Word(s) => Some(&self.text.as_bytes()[s.start..s.end]),
            _ => None,
        }
    }

    /// The value of the number at `i`, if the token there is a number.
    pub(crate) fn number(&self, i: usize) -> Option<f64> {
        match self.tokens.get(i)? {
            Token::Number(_, v) => Some(*v),
            _ => None,
        }
    }

    pub(crate) fn is_slash(&self, i: usize) -> bool {
        matches!(self.tokens.get(i), Some(Token::Slash))
    }

    /// The text of token `i` used for phrase keys; slashes never join a phrase.
    pub(crate) fn key(&self, i: usize) -> Option<&'a str> {
        match self.tokens.get(i)? {
            Token::Word(s) | Token::Number(s, _) => Some(self.span(*s)),
            Token::Slash => None,
        }
    }
}

/// Splits normalized text (see `crate::domain::codes::normalize_text`) into tokens. Letters and
/// digits are split apart ("5mg" -> 5, mg; "d3" -> d, 3) so that typed and RxNorm spellings of
/// the same strength read alike; "/" is kept as its own token because it separates both
/// combination parts ("325 mg / oxycodone") and strength denominators ("mg/ml").
pub(crate) fn lex(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    lex_onto(text, &mut tokens);
    tokens
}

/// What the lexer makes of a byte of the text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ByteClass {
    Digit,
    /// An ASCII letter.
    Letter,
    Slash,
    /// Any byte of a non-ASCII character: the character is decoded to ask whether it is a
    /// letter.
    NonAscii,
    /// Any other ASCII byte: a separator, dropped.
    Other,
}

/// The class of every byte, so that the lexer asks one question of a byte, not up to four
/// (`is_ascii_digit`, `is_ascii_alphabetic`, `is_ascii`, `== b'/'`).
const BYTE_CLASS: [ByteClass; 256] = {
    let mut table = [ByteClass::Other; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'0'..=b'9' => ByteClass::Digit,
            b'a'..=b'z' | b'A'..=b'Z' => ByteClass::Letter,
            b'/' => ByteClass::Slash,
            0x80..=0xff => ByteClass::NonAscii,
            _ => ByteClass::Other,
        };
        b += 1;
    }
    table
};

/// [`lex`] into `tokens` (emptied first), so that one buffer serves every text.
pub(crate) fn lex_onto(text: &str, tokens: &mut Vec<Token>) {
    lex_checking::<false>(text, tokens);
}

/// What normalization would make of a text, as [`lex_if_normal_but_case_onto`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NormalForm {
    /// The text is its own normalized form (no upper-case letter): it is read as it is.
    Itself,
    /// The normalized form is the text lower-cased.
    LowerCased,
    /// Anything else: the text goes through the normalizer.
    Other,
}

/// [`lex_onto`] of `text` as read for its normalized form, when that form is `text`
/// lower-cased (as `crate::domain::codes::push_if_normal_but_case` decides it: only kept
/// ASCII bytes with single spaces between them) or `text` itself; otherwise
/// [`NormalForm::Other`], with `tokens` left partly filled. Lower-casing moves no byte and
/// changes no byte's class, so the tokens read from `text` are those of its normalized copy,
/// spans included: an order text is read once, instead of once to check it, once to copy it
/// and once to lex it, and a text already in lower case is not copied at all.
pub(crate) fn lex_if_normal_but_case_onto(text: &str, tokens: &mut Vec<Token>) -> NormalForm {
    // A leading or trailing space (or no byte at all) is refused here, so that the lexer
    // needs only look back from a space for another.
    match text.as_bytes() {
        [first, .., last] if *first != b' ' && *last != b' ' => {}
        [single] if *single != b' ' => {}
        _ => return NormalForm::Other,
    }
    lex_checking::<true>(text, tokens)
}

/// The lexer. With `CHECK`, it stops and returns [`NormalForm::Other`] at the first byte that
/// normalization would change other than by its case: a non-ASCII byte, an ASCII byte that is
/// neither kept (letters, digits, '.', '/', '%') nor a space, or a space after a space (the
/// caller has refused a leading and a trailing one). Without, it reads the whole text.
#[inline(always)]
fn lex_checking<const CHECK: bool>(text: &str, tokens: &mut Vec<Token>) -> NormalForm {
    // Read byte by byte through `BYTE_CLASS`: normalized order text is nearly always ASCII,
    // and only a non-ASCII character is decoded (to ask whether it is a letter).
    tokens.clear();
    tokens.reserve(text.len() / 3 + 1);
    let bytes = text.as_bytes();
    // Every ASCII letter's bits and-ed together: the lower-case bit (0x20) stays set only
    // when no letter is upper case.
    let mut letters = 0xff;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let start = i;
        match BYTE_CLASS[usize::from(byte)] {
            ByteClass::Digit => {
                let (end, value) = number_at(text, start);
                i = end;
                if let Some(value) = value {
                    tokens.push(Token::Number(Span { start, end }, value));
                }
            }
            ByteClass::Letter => {
                // The word's run of ASCII letters here, without a call (nearly every word of
                // order text is one run); `word_end` reads on only at a non-ASCII byte.
                letters &= byte;
                i += 1;
                while let Some(&b) = bytes.get(i)
                    && BYTE_CLASS[usize::from(b)] == ByteClass::Letter
                {
                    letters &= b;
                    i += 1;
                }
                if bytes.get(i).is_some_and(|b| !b.is_ascii()) {
                    if CHECK {
                        return NormalForm::Other;
                    }
                    i = word_end(text, i);
                }
                tokens.push(Token::Word(Span { start, end: i }));
            }
            ByteClass::NonAscii => {
                if CHECK {
                    return NormalForm::Other;
                }
                let ch = char_at(text, start);
                i += ch.len_utf8();
                if ch.is_alphabetic() {
                    i = word_end(text, i);
                    tokens.push(Token::Word(Span { start, end: i }));
                }
            }
            ByteClass::Slash => {
                tokens.push(Token::Slash);
                i += 1;
            }
            ByteClass::Other => {
                // Of the kept bytes only '.' and '%' are of this class. A space is never the
                // first byte here (the caller refused it), so it has one before it.
                if CHECK && !(is_kept_byte(byte) || (byte == b' ' && bytes[i - 1] != b' ')) {
                    return NormalForm::Other;
                }
                i += 1;
            }
        }
    }
    if letters & 0x20 != 0 {
        NormalForm::Itself
    } else {
        NormalForm::LowerCased
    }
}

/// The character at byte `i` of `text` (a character boundary before its end).
fn char_at(text: &str, i: usize) -> char {
    text[i..]
        .chars()
        .next()
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The end of the word whose letters go on at byte `i`: ASCII letters one byte each, other
/// letters decoded.
fn word_end(text: &str, mut i: usize) -> usize {
    let bytes = text.as_bytes();
    loop {
        // A run of ASCII letters (nearly every word of order text is one) in a single scan.
        i += bytes[i..]
            .iter()
            .take_while(|&&b| BYTE_CLASS[usize::from(b)] == ByteClass::Letter)
            .count();
        match bytes.get(i) {
            Some(b) if !b.is_ascii() => match char_at(text, i) {
                ch if ch.is_alphabetic() => i += ch.len_utf8(),
                _ => return i,
            },
            _ => return i,
        }
    }
}

/// The number starting with the digit at byte `start`: its end and its value as
/// `str::parse::<f64>` reads it. A number is digits, then at most one dot followed by digits
/// ("1.2.3" is 1.2, then 3). The value is read in the same pass as the digits: up to 15
/// significant digits the integer and its power of ten are exact doubles, so one division is
/// the correctly rounded value (the fast path of every decimal parser); longer numbers take
/// `parse`.
fn number_at(text: &str, start: usize) -> (usize, Option<f64>) {
    const POWERS_OF_TEN: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let bytes = text.as_bytes();
    // Wrapping: past 19 digits the mantissa overflows, but then `parse` gives the value.
    let mut mantissa: u64 = 0;
    let mut digits = 0;
    let mut dot = None;
    let mut i = start;
    loop {
        match bytes.get(i) {
            Some(&b) if b.is_ascii_digit() => {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                digits += 1;
            }
            Some(b'.') if dot.is_none() && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                dot = Some(i);
            }
            _ => break,
        }
        i += 1;
    }
    let value = if digits <= 15 {
        let decimals = dot.map_or(0, |dot| i - dot - 1);
        Some(mantissa as f64 / POWERS_OF_TEN[decimals])
    } else {
        text[start..i].parse().ok()
    };
    (i, value)
}

/// Salt and release-modifier words that sit between an ingredient name and its strength and must not
/// stop a match ("oxycodone hydrochloride 5 MG"). Calcium and magnesium salts are ingredient
/// names of their own and are matched first as longer phrases.
pub(crate) fn is_salt_word(word: &str) -> bool {
    matches!(
        word,
        "hydrochloride"
            | "hcl"
            | "sulfate"
            | "sulphate"
            | "tartrate"
            | "bitartrate"
            | "sodium"
            | "potassium"
            | "phosphate"
            | "citrate"
            | "acetate"
            | "mesylate"
            | "napsylate"
            | "maleate"
            | "besylate"
            | "monohydrate"
            | "anhydrous"
            | "hydrobromide"
            | "terephthalate"
            | "succinate"
            | "fumarate"
            | "base"
            // Release modifiers typed between name and strength ("MORPHINE ER 20 MG").
            | "er"
            | "ir"
            | "sr"
            | "xr"
            | "cr"
            | "ext"
            | "extended"
            | "immediate"
            | "release"
    )
}

enum Numerator {
    Unit(StrengthUnit, f64),
}

fn numerator_unit(word: &str) -> Option<Numerator> {
    Some(match word {
        "mg" | "milligram" | "milligrams" => Numerator::Unit(StrengthUnit::Milligram, 1.0),
        "g" | "gm" | "gram" | "grams" => Numerator::Unit(StrengthUnit::Milligram, 1000.0),
        "mcg" | "ug" | "µg" | "microgram" | "micrograms" => {
            Numerator::Unit(StrengthUnit::Microgram, 1.0)
        }
        "iu" | "unt" | "unit" | "units" | "u" => {
            Numerator::Unit(StrengthUnit::InternationalUnit, 1.0)
        }
        _ => return None,
    })
}

/// A strength read at `tokens[i..]`: the strength, whether "elemental" follows it, and the
/// index after it.
pub(crate) fn parse_strength(tokens: Lexed<'_>, i: usize) -> Option<(Strength, bool, usize)> {
    let value = tokens.number(i)?;
    let unit_word = tokens.word(i + 1)?;
    let Numerator::Unit(unit, scale) = numerator_unit(unit_word)?;
    let amount = value * scale;
    let mut next = i + 2;
    let mut strength = Strength::PerUnit { amount, unit };
    let denominator = match tokens.word(next + 1) {
        Some(d) if tokens.is_slash(next) || tokens.word(next) == Some("per") => Some((d, 2)),
        _ => None,
    };
    if let Some((d, width)) = denominator {
        match d {
            "ml" | "milliliter" | "millilitre" => {
                strength = Strength::PerMillilitre {
                    amount,
                    unit,
                    volume_ml: None,
                };
                next += width;
            }
            "hr" | "h" | "hour" => {
                let micrograms = match unit {
                    StrengthUnit::Milligram => amount * 1000.0,
                    _ => amount,
                };
                strength = Strength::PerHour { micrograms };
                next += width;
            }
            "actuat" | "actuation" | "spray" | "dose" | "tab" | "tablet" | "cap" | "capsule" => {
                next += width;
            }
            _ => {}
        }
    }
    let elemental = (next..next + 2).any(|k| tokens.word(k) == Some("elemental"));
    Some((strength, elemental, next))
}

/// A fixed volume stated apart from the strength: "1 ML denosumab 60 MG/ML", "... 100 ml bag".
pub(crate) fn fixed_volume_ml(tokens: Lexed<'_>) -> Option<f64> {
    (0..tokens.len()).find_map(|i| {
        let v = tokens.number(i)?;
        let ml = matches!(tokens.word(i + 1), Some("ml" | "milliliter" | "millilitre"));
        (ml && (i == 0 || !tokens.is_slash(i - 1))).then_some(v)
    })
}

/// The dose form named first in the text ("Tablet for Oral Suspension" is a tablet). Each word
/// is read as bytes ([`Lexed::word_bytes`]): this looks at every word of every order text.
pub(crate) fn form_of(tokens: Lexed<'_>) -> Option<ProductForm> {
    (0..tokens.len()).find_map(|i| {
        Some(match tokens.word_bytes(i)? {
            b"tablet" | b"tablets" | b"tab" | b"tabs" | b"caplet" => ProductForm::Tablet,
            b"capsule" | b"capsules" | b"cap" | b"caps" => ProductForm::Capsule,
            b"transdermal" | b"patch" => ProductForm::Patch,
            b"solution" | b"suspension" | b"elixir" | b"syrup" | b"liquid" | b"powder" => {
                ProductForm::Solution
            }
            b"injection" | b"injectable" | b"inj" | b"syringe" | b"cartridge" | b"infusion"
            | b"injector" | b"iv" => ProductForm::Injection,
            b"spray" => ProductForm::Spray,
            b"film" => ProductForm::Film,
            b"suppository" | b"suppositories" => ProductForm::Suppository,
            b"lozenge" | b"implant" | b"pack" => ProductForm::Other,
            _ => return None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens of `text`, each with its text: `w` word, `n` number (and its value's bits),
    /// `/`.
    fn described(text: &str) -> Vec<(String, u64)> {
        let tokens = lex(text);
        let l = Lexed {
            text,
            tokens: &tokens,
        };
        (0..l.len())
            .map(|i| match tokens[i] {
                Token::Number(_, v) => (format!("n{}", l.key(i).unwrap()), v.to_bits()),
                Token::Word(_) => (format!("w{}", l.word(i).unwrap()), 0),
                Token::Slash => ("/".to_owned(), 0),
            })
            .collect()
    }

    fn lexed<'a>(text: &'a str, tokens: &'a [Token]) -> Lexed<'a> {
        Lexed { text, tokens }
    }

    /// [`form_of`] as it was, reading each word as a `str`: the reference for the byte match.
    fn form_of_by_str(tokens: Lexed<'_>) -> Option<ProductForm> {
        (0..tokens.len()).find_map(|i| {
            Some(match tokens.word(i)? {
                "tablet" | "tablets" | "tab" | "tabs" | "caplet" => ProductForm::Tablet,
                "capsule" | "capsules" | "cap" | "caps" => ProductForm::Capsule,
                "transdermal" | "patch" => ProductForm::Patch,
                "solution" | "suspension" | "elixir" | "syrup" | "liquid" | "powder" => {
                    ProductForm::Solution
                }
                "injection" | "injectable" | "inj" | "syringe" | "cartridge" | "infusion"
                | "injector" | "iv" => ProductForm::Injection,
                "spray" => ProductForm::Spray,
                "film" => ProductForm::Film,
                "suppository" | "suppositories" => ProductForm::Suppository,
                "lozenge" | "implant" | "pack" => ProductForm::Other,
                _ => return None,
            })
        })
    }

    #[test]
    fn lexer_splits_numbers_from_units() {
        let n = |s: &str, v: f64| (format!("n{s}"), v.to_bits());
        let w = |s: &str| (format!("w{s}"), 0);
        assert_eq!(
            described("oxycodone 5mg/325 tab"),
            vec![
                w("oxycodone"),
                n("5", 5.0),
                w("mg"),
                ("/".to_owned(), 0),
                n("325", 325.0),
                w("tab"),
            ]
        );
        assert_eq!(described("0.075 mg/hr")[0], n("0.075", 0.075));
        assert_eq!(described("vitamin d3"), described("vitamin d 3"));
    }

    #[test]
    fn one_buffer_serves_every_text() {
        let mut tokens = Vec::new();
        for text in ["oxycodone 5mg/325 tab", "", "vitamin d3 1000 units", "é/2"] {
            lex_onto(text, &mut tokens);
            assert_eq!(tokens, lex(text));
        }
    }

    /// The byte reader before [`BYTE_CLASS`] and [`number_at`]: four questions per byte, and
    /// each number's digits walked twice (once to find its end, once by `parse_decimal`). The
    /// reference for the table-driven lexer, token for token.
    fn lex_onto_bytewise(text: &str, tokens: &mut Vec<Token>) {
        tokens.clear();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(&byte) = bytes.get(i) {
            let start = i;
            if byte.is_ascii_digit() {
                let mut seen_dot = false;
                while let Some(&b) = bytes.get(i) {
                    if b.is_ascii_digit() {
                        i += 1;
                    } else if b == b'.'
                        && !seen_dot
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                    {
                        seen_dot = true;
                        i += 1;
                    } else {
                        break;
                    }
                }
                if let Some(v) = parse_decimal(&text[start..i]) {
                    tokens.push(Token::Number(Span { start, end: i }, v));
                }
            } else if byte.is_ascii_alphabetic()
                || (!byte.is_ascii() && letter_len(text, i).is_some())
            {
                loop {
                    match bytes.get(i) {
                        Some(b) if b.is_ascii_alphabetic() => i += 1,
                        Some(b) if !b.is_ascii() => match letter_len(text, i) {
                            Some(len) => i += len,
                            None => break,
                        },
                        _ => break,
                    }
                }
                tokens.push(Token::Word(Span { start, end: i }));
            } else if byte.is_ascii() {
                if byte == b'/' {
                    tokens.push(Token::Slash);
                }
                i += 1;
            } else {
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }

    /// The byte length of the non-ASCII character at `text[i..]` when it is alphabetic.
    fn letter_len(text: &str, i: usize) -> Option<usize> {
        let ch = text[i..].chars().next()?;
        ch.is_alphabetic().then(|| ch.len_utf8())
    }

    /// `digits` or `digits.digits` as `str::parse::<f64>` reads it (the second walk of
    /// [`lex_onto_bytewise`]).
    fn parse_decimal(s: &str) -> Option<f64> {
        const POWERS_OF_TEN: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        let mut mantissa: u64 = 0;
        let mut digits = 0;
        let mut decimals = None;
        for b in s.bytes() {
            match b {
                b'0'..=b'9' => {
                    mantissa = mantissa * 10 + u64::from(b - b'0');
                    digits += 1;
                    if let Some(d) = decimals.as_mut() {
                        *d += 1;
                    }
                }
                b'.' if decimals.is_none() => decimals = Some(0),
                _ => return s.parse().ok(),
            }
            if digits > 15 {
                return s.parse().ok();
            }
        }
        if digits == 0 {
            return s.parse().ok();
        }
        Some(mantissa as f64 / POWERS_OF_TEN[decimals.unwrap_or(0)])
    }

    /// Tokens with each number's value as its bits, so that equal means bit for bit.
    fn bits(tokens: &[Token]) -> Vec<(Token, u64)> {
        tokens
            .iter()
            .map(|t| match t {
                Token::Number(_, v) => (*t, v.to_bits()),
                _ => (*t, 0),
            })
            .collect()
    }

    /// The lexer as it was written, one `char` at a time: the reference for the byte reader.
    /// Its tokens are described as [`described`] describes them.
    fn lex_reference(text: &str) -> Vec<(String, u64)> {
        let mut tokens = Vec::new();
        let bytes = text.as_bytes();
        let mut chars = text.char_indices().peekable();
        while let Some(&(start, ch)) = chars.peek() {
            if ch.is_ascii_digit() {
                let mut end = start;
                let mut seen_dot = false;
                while let Some(&(i, c)) = chars.peek() {
                    let dot_then_digit = c == '.'
                        && !seen_dot
                        && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit());
                    if c.is_ascii_digit() || dot_then_digit {
                        seen_dot |= c == '.';
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let s = &text[start..end];
                if let Ok(v) = s.parse::<f64>() {
                    tokens.push((format!("n{s}"), v.to_bits()));
                }
            } else if ch.is_alphabetic() {
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_alphabetic() {
                        end = i + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push((format!("w{}", &text[start..end]), 0));
            } else {
                if ch == '/' {
                    tokens.push(("/".to_owned(), 0));
                }
                chars.next();
            }
        }
        tokens
    }

    proptest::proptest! {
        #[test]
        fn lexer_agrees_with_the_char_by_char_reading(text in "\\PC{0,40}|[ a-z0-9./%µé²٣]{0,40}|[0-9.]{0,30}") {
            // Numbers are compared bit for bit (NaN never occurs; -0 cannot be written).
            proptest::prop_assert_eq!(described(&text), lex_reference(&text));
        }

        #[test]
        fn table_lexer_agrees_with_the_bytewise_one(text in "\\PC{0,40}|[ a-zA-Z0-9./%µé²٣-]{0,40}|[0-9.]{0,30}|[0-9]{12,24}(\\.[0-9]{0,8})?") {
            let mut old = Vec::new();
            lex_onto_bytewise(&text, &mut old);
            proptest::prop_assert_eq!(bits(&lex(&text)), bits(&old));
        }

        /// A text is lexed while checked exactly when the normalizer would only lower-case it
        /// (`push_if_normal_but_case`), and then into the tokens of its normalized copy; it is
        /// its own normalized form exactly when that copy equals it.
        #[test]
        fn lexed_while_checked_as_the_normalized_copy(text in "([A-Za-z0-9./%]{1,6}[ ]{1,2}){0,5}[A-Za-z0-9./%,-]{0,6}[ ]?|[ -~]{0,20}|\\PC{0,20}|[ a-zA-Zé]{0,10}") {
            let mut copy = String::new();
            let normal = crate::domain::codes::push_if_normal_but_case(&mut copy, &text);
            let mut tokens = vec![Token::Slash];
            let form = lex_if_normal_but_case_onto(&text, &mut tokens);
            let expected = match normal {
                false => NormalForm::Other,
                true if copy == text => NormalForm::Itself,
                true => NormalForm::LowerCased,
            };
            proptest::prop_assert_eq!(form, expected);
            if normal {
                proptest::prop_assert_eq!(bits(&tokens), bits(&lex(&copy)));
            }
        }

        #[test]
        fn form_of_agrees_with_the_str_match(
            words in proptest::collection::vec(
                "tablet|tabs|caps|capsule|patch|transdermal|syrup|powder|inj|iv|injector|spray|film|suppositories|lozenge|pack|oral|mg|5|/|[a-z]{1,12}|é",
                0..6,
            ),
        ) {
            let text = words.join(" ");
            let tokens = lex(&text);
            proptest::prop_assert_eq!(form_of(lexed(&text, &tokens)), form_of_by_str(lexed(&text, &tokens)));
        }

        #[test]
        fn decimals_parse_as_str_parse(int in 0u64..10_000_000_000_000_000, frac in "[0-9]{0,12}") {
            let s = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
            let read = number_at(&s, 0);
            proptest::prop_assert_eq!(read.0, s.len());
            proptest::prop_assert_eq!(read.1.map(f64::to_bits), s.parse::<f64>().ok().map(f64::to_bits));
            proptest::prop_assert_eq!(parse_decimal(&s).map(f64::to_bits), s.parse::<f64>().ok().map(f64::to_bits));
        }
    }

    #[test]
    fn strengths_per_unit_per_ml_per_hour() {
        let (text, tokens) = ("0.075 mg/hr", lex("0.075 mg/hr"));
        let t = lexed(text, &tokens);
        assert!(
            matches!(parse_strength(t, 0), Some((Strength::PerHour { micrograms }, false, 4)) if (micrograms - 75.0).abs() < 1e-9)
        );
        let (text, tokens) = ("2 mg/ml", lex("2 mg/ml"));
        let t = lexed(text, &tokens);
        assert!(matches!(
            parse_strength(t, 0),
            Some((
                Strength::PerMillilitre {
                    amount: 2.0,
                    unit: StrengthUnit::Milligram,
                    ..
                },
                _,
                _
            ))
        ));
        let (text, tokens) = ("500 mg elemental", lex("500 mg elemental"));
        let t = lexed(text, &tokens);
        assert!(matches!(parse_strength(t, 0), Some((_, true, _))));
        let (text, tokens) = ("325 mg / oxycodone", lex("325 mg / oxycodone"));
        let t = lexed(text, &tokens);
        assert!(matches!(
            parse_strength(t, 0),
            Some((Strength::PerUnit { .. }, false, 2))
        ));
    }
}
