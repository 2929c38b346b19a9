//! The assembler: listing text to [`Program`], collecting every error with line:column.

use super::lex::{Token, col_of, tokens, unquote};
use crate::instr::{Instr, Opcode, OperandSource};
use crate::operand::{Stream, parse_u64};
use crate::program::{CoreCode, DataKind, DataSegment, FORMAT_VERSION, Program, Symbol, SymbolKind};
use thiserror::Error;

/// An assembly error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{line}:{col}: {message}")]
pub struct AsmError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong, with what was expected.
    pub message: String,
}

/// Assembles a listing; on failure returns every error found (one per bad line at most).
pub fn assemble(text: &str) -> Result<Program, Vec<AsmError>> {
    let mut st = State::default();
    for (i, line) in text.lines().enumerate() {
        if let Err((col, message)) = st.line(line) {
            st.errors.push(AsmError { line: i + 1, col, message });
        }
    }
    let last = text.lines().count().max(1);
    if let Err((col, message)) = st.close_data() {
        st.errors.push(AsmError { line: last, col, message });
    }
    if st.errors.is_empty() { Ok(st.program) } else { Err(st.errors) }
}

type LineResult = Result<(), (usize, String)>;

/// A data segment being filled by `.hex` lines, with its declared length.
struct OpenData {
    declared: usize,
    col: usize,
}

#[derive(Default)]
struct State {
    program: Program,
    stream: Option<Stream>,
    data: Option<OpenData>,
    errors: Vec<AsmError>,
}

impl State {
    fn line(&mut self, line: &str) -> LineResult {
        let toks = tokens(line)?;
        let Some(first) = toks.first() else { return Ok(()) };
        if first.text != ".hex" {
            self.close_data()?;
        }
        match first.text {
            ".version" => self.version(&toks),
            ".chip" => self.chip(&toks),
            ".core" => self.core(&toks),
            ".stream" => self.stream(&toks),
            ".data" => self.data(&toks),
            ".hex" => self.hex(line, &toks),
            ".symbol" => self.symbol(&toks),
            t if t.starts_with('.') => Err((
                first.col,
                format!("unknown directive `{t}`: expected .version, .chip, .core, .stream, .data, .hex or .symbol"),
            )),
            _ => self.instr(&toks),
        }
    }

    fn version(&mut self, toks: &[Token<'_>]) -> LineResult {
        let v = positional(toks, 1, "a format version")?;
        match parse_u64(v.text) {
            Some(n) if n == u64::from(FORMAT_VERSION) => {
                self.program.header.version = FORMAT_VERSION;
                no_more(toks, 2)
            }
            _ => Err((v.col, format!("unsupported format version `{}`: expected {FORMAT_VERSION}", v.text))),
        }
    }

    fn chip(&mut self, toks: &[Token<'_>]) -> LineResult {
        let mut kv = Fields::new(&toks[1..], toks[0].col);
        self.program.header.chip_cores = kv.number("cores", u64::from(u16::MAX))? as u16;
        self.program.header.chip_hash = kv.number("hash", u64::MAX)?;
        kv.finish()
    }

    fn core(&mut self, toks: &[Token<'_>]) -> LineResult {
        let t = positional(toks, 1, "a core number")?;
        let want = self.program.cores.len();
        if parse_u64(t.text) != Some(want as u64) {
            return Err((t.col, format!("expected `.core {want}` (cores are listed in order), found `{}`", t.text)));
        }
        self.program.cores.push(CoreCode::default());
        self.stream = None;
        no_more(toks, 2)
    }

    fn stream(&mut self, toks: &[Token<'_>]) -> LineResult {
        let t = positional(toks, 1, "a stream name (fp, bp, wg, dma)")?;
        if self.program.cores.is_empty() {
            return Err((toks[0].col, "`.stream` before any `.core`: expected `.core 0` first".to_string()));
        }
        let s = Stream::from_name(t.text)
            .ok_or_else(|| (t.col, format!("expected a stream name (fp, bp, wg, dma), found `{}`", t.text)))?;
        self.stream = Some(s);
        no_more(toks, 2)
    }

    fn instr(&mut self, toks: &[Token<'_>]) -> LineResult {
        let m = toks[0];
        let op = Opcode::from_mnemonic(m.text)
            .ok_or_else(|| (m.col, format!("unknown mnemonic `{}`: see ISA.md for the instruction list", m.text)))?;
        let (Some(stream), Some(core)) = (self.stream, self.program.cores.last_mut()) else {
            return Err((
                m.col,
                "instruction outside a stream: expected `.core N` and `.stream NAME` before it".to_string(),
            ));
        };
        let mut fields = Fields::new(&toks[1..], m.col);
        let instr = Instr::parse_operands(op, &mut fields)?;
        fields.finish().map_err(|(col, msg)| (col, format!("{msg}; {}", operand_list(op))))?;
        core.stream_mut(stream).push(instr);
        Ok(())
    }

    fn data(&mut self, toks: &[Token<'_>]) -> LineResult {
        let name_tok = positional(toks, 1, "a quoted segment name")?;
        let name = unquote(name_tok.text).map_err(|m| (name_tok.col, m))?;
        let mut kv = Fields::new(&toks[2..], toks[0].col);
        let (kind_text, kind_col) = kv.text("kind")?;
        let kind = DataKind::from_name(kind_text).ok_or_else(|| {
            (kind_col, format!("expected a data kind (fp16, fp32, spikes, raw), found `{kind_text}`"))
        })?;
        let addr = kv.number("addr", u64::from(u32::MAX))? as u32;
        let declared = kv.number("len", u64::from(u32::MAX))? as usize;
        kv.finish()?;
        self.program.data.push(DataSegment { name, kind, addr, bytes: Vec::new() });
        self.data = Some(OpenData { declared, col: toks[0].col });
        Ok(())
    }

    fn hex(&mut self, line: &str, toks: &[Token<'_>]) -> LineResult {
        let (Some(open), Some(seg)) = (&self.data, self.program.data.last_mut()) else {
            return Err((toks[0].col, "`.hex` outside a data segment: expected a `.data` line before it".to_string()));
        };
        let t = positional(toks, 1, "hex bytes")?;
        no_more(toks, 2)?;
        let bytes = t.text.as_bytes();
        if bytes.len() % 2 != 0 {
            return Err((t.col, "odd number of hex digits: expected two digits per byte".to_string()));
        }
        if seg.bytes.len() + bytes.len() / 2 > open.declared {
            return Err((t.col, format!("more bytes than the segment's len={}", open.declared)));
        }
        for (i, pair) in bytes.chunks(2).enumerate() {
            let byte = std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok());
            let at = col_of(line, line.len() - line.trim_start().len()) + 5 + 2 * i;
            seg.bytes.push(byte.ok_or_else(|| (at, "expected two hex digits".to_string()))?);
        }
        Ok(())
    }

    /// Checks that the open data segment got exactly its declared bytes.
    fn close_data(&mut self) -> LineResult {
        let Some(open) = self.data.take() else { return Ok(()) };
        let got = self.program.data.last().map_or(0, |d| d.bytes.len());
        if got != open.declared {
            return Err((open.col, format!("data segment has {got} bytes of `.hex`: expected len={}", open.declared)));
        }
        Ok(())
    }

    fn symbol(&mut self, toks: &[Token<'_>]) -> LineResult {
        let name_tok = positional(toks, 1, "a quoted symbol name")?;
        let name = unquote(name_tok.text).map_err(|m| (name_tok.col, m))?;
        let mut kv = Fields::new(&toks[2..], toks[0].col);
        let (kind_text, kind_col) = kv.text("kind")?;
        let kind = match kind_text {
            "tensor" => SymbolKind::Tensor,
            "layer" => {
                let core = kv.number("core", u64::from(u16::MAX))? as u16;
                let (s, col) = kv.text("stream")?;
                let stream = Stream::from_name(s)
                    .ok_or_else(|| (col, format!("expected a stream name (fp, bp, wg, dma), found `{s}`")))?;
                SymbolKind::Layer { core, stream }
            }
            _ => return Err((kind_col, format!("expected a symbol kind (tensor, layer), found `{kind_text}`"))),
        };
        let addr = kv.number("addr", u64::from(u32::MAX))? as u32;
        let len = kv.number("len", u64::from(u32::MAX))? as u32;
        kv.finish()?;
        self.program.symbols.push(Symbol { name, kind, addr, len });
        Ok(())
    }
}

/// "`mnemonic` takes a=, b=" for error messages.
fn operand_list(op: Opcode) -> String {
    let names: Vec<String> = op.info().fields.iter().map(|f| format!("{}=", f.name)).collect();
    if names.is_empty() {
        format!("`{}` takes no operands", op.mnemonic())
    } else {
        format!("`{}` takes {}", op.mnemonic(), names.join(" "))
    }
}

fn positional<'a>(toks: &[Token<'a>], i: usize, what: &str) -> Result<Token<'a>, (usize, String)> {
    toks.get(i).copied().ok_or_else(|| {
        let col = toks.last().map_or(1, |t| t.col + t.text.chars().count());
        (col, format!("expected {what} after `{}`", toks[0].text))
    })
}

fn no_more(toks: &[Token<'_>], n: usize) -> LineResult {
    match toks.get(n) {
        Some(t) => Err((t.col, format!("unexpected `{}`: expected the end of the line", t.text))),
        None => Ok(()),
    }
}

/// `name=value` tokens of one line; each must be used exactly once.
struct Fields<'a> {
    items: Vec<(&'a str, &'a str, usize, bool)>,
    line_col: usize,
}

impl<'a> Fields<'a> {
    fn new(toks: &[Token<'a>], line_col: usize) -> Fields<'a> {
        let items = toks
            .iter()
            .map(|t| match t.text.split_once('=') {
                Some((k, v)) => (k, v, t.col, false),
                None => ("", t.text, t.col, false),
            })
            .collect();
        Fields { items, line_col }
    }

    fn number(&mut self, name: &'static str, max: u64) -> Result<u64, (usize, String)> {
        let (text, col) = self.text(name)?;
        parse_u64(text)
            .filter(|v| *v <= max)
            .ok_or_else(|| (col, format!("operand `{name}`: expected a number (0..={max}), found `{text}`")))
    }

    /// Reports an unused or malformed token, if any.
    fn finish(&self) -> LineResult {
        if let Some((k, v, col, _)) = self.items.iter().find(|i| !i.3) {
            let msg = if k.is_empty() {
                format!("expected `name=value`, found `{v}`")
            } else {
                format!("unknown or repeated operand `{k}`")
            };
            return Err((*col, msg));
        }
        Ok(())
    }
}

impl OperandSource for Fields<'_> {
    fn text(&mut self, name: &'static str) -> Result<(&str, usize), (usize, String)> {
        let line_col = self.line_col;
        let item = self.items.iter_mut().find(|i| i.0 == name && !i.3);
        match item {
            Some(i) => {
                i.3 = true;
                let col = i.2 + name.len() + 1;
                Ok((i.1, col))
            }
            None => Err((line_col, format!("missing operand `{name}=...`"))),
        }
    }
}
