//! The few libxml2 calls RelaxNG validation needs, bound at run time with
//! `dlopen("libxml2.so.2")`: libxml2 is what Pacemaker itself validates with (so
//! verdicts match Pacemaker's), and loading it at run time keeps it out of the
//! link of every program that embeds Phalanx without using schemas.
//!
//! Everything here is `unsafe` FFI wrapped in owners that free what libxml2
//! allocated; [`super::PacemakerSchemas`] serialises all use behind one mutex.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr::NonNull;

/// libxml2's `xmlError`, as far as it is read here (`message`, `line`); the
/// layout of its first fields is stable across libxml2 2.x.
#[repr(C)]
struct XmlError {
    domain: c_int,
    code: c_int,
    message: *const c_char,
    level: c_int,
    file: *const c_char,
    line: c_int,
}

type StructuredErrorFn = unsafe extern "C" fn(user: *mut c_void, error: *const XmlError);

/// `xmlParserOption` bits: no network access, no error or warning printing.
const XML_PARSE_NOERROR: c_int = 1 << 5;
const XML_PARSE_NOWARNING: c_int = 1 << 6;
const XML_PARSE_NONET: c_int = 1 << 11;

/// At most this many messages are kept per validation (the first ones tell).
const MAX_MESSAGES: usize = 5;

type VoidFn = unsafe extern "C" fn();
type SetGlobalErrorsFn = unsafe extern "C" fn(*mut c_void, Option<StructuredErrorFn>);
type NewParserCtxtFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type SetCtxtErrorsFn = unsafe extern "C" fn(*mut c_void, Option<StructuredErrorFn>, *mut c_void);
type PtrToPtrFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type ValidateDocFn = unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int;
type ReadMemoryFn =
    unsafe extern "C" fn(*const c_char, c_int, *const c_char, *const c_char, c_int) -> *mut c_void;

/// The entry points, resolved once.
struct Api {
    init_parser: VoidFn,
    set_structured_error_func: SetGlobalErrorsFn,
    new_parser_ctxt: NewParserCtxtFn,
    set_parser_structured_errors: SetCtxtErrorsFn,
    parse: PtrToPtrFn,
    free_parser_ctxt: FreeFn,
    free_schema: FreeFn,
    new_valid_ctxt: PtrToPtrFn,
    set_valid_structured_errors: SetCtxtErrorsFn,
    validate_doc: ValidateDocFn,
    free_valid_ctxt: FreeFn,
    read_memory: ReadMemoryFn,
    free_doc: FreeFn,
}

/// A loaded libxml2.
pub struct Libxml2 {
    api: Api,
}

/// Collects libxml2's structured error messages into a `Vec<String>`.
unsafe extern "C" fn collect(user: *mut c_void, error: *const XmlError) {
    if user.is_null() || error.is_null() {
        return;
    }
    // SAFETY: `user` is the `&mut Vec<String>` given with this callback for the
    // duration of the one call that reports errors; `error` is libxml2's error
    // record, valid during the callback, whose leading fields `XmlError` mirrors.
    unsafe {
        let out = &mut *user.cast::<Vec<String>>();
        if out.len() >= MAX_MESSAGES {
            return;
        }
        let e = &*error;
        let text = if e.message.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr(e.message)
                .to_string_lossy()
                .trim()
                .to_string()
        };
        out.push(if e.line > 0 {
            format!("line {}: {text}", e.line)
        } else {
            text
        });
    }
}

/// Swallows errors libxml2 reports outside a context (it would print them).
unsafe extern "C" fn ignore(_user: *mut c_void, _error: *const XmlError) {}

impl Libxml2 {
    /// Loads `libxml2.so.2` and resolves the calls.
    ///
    /// # Errors
    /// The library or one of its symbols is missing.
    pub fn load() -> Result<Libxml2, String> {
        let name = c"libxml2.so.2";
        // SAFETY: dlopen with a valid C string; the handle is never closed, so the
        // resolved function pointers stay valid for the life of the process.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a thread-local message or null.
            let why = unsafe { libc::dlerror() };
            let why = if why.is_null() {
                "not found".to_string()
            } else {
                // SAFETY: non-null dlerror strings are NUL-terminated.
                unsafe { CStr::from_ptr(why) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(format!("cannot load libxml2 (libxml2.so.2): {why}"));
        }
        macro_rules! sym {
            ($name:literal, $ty:ty) => {{
                // SAFETY: `handle` is a live dlopen handle and the name a C string.
                let p = unsafe { libc::dlsym(handle, concat!($name, "\0").as_ptr().cast()) };
                if p.is_null() {
                    return Err(format!("libxml2 has no {}", $name));
                }
                // SAFETY: the symbol is libxml2's function of that name, whose C
                // signature the field's type declares (libxml2 2.x public API).
                unsafe { std::mem::transmute::<*mut c_void, $ty>(p) }
            }};
        }
        let api = Api {
            init_parser: sym!("xmlInitParser", VoidFn),
            set_structured_error_func: sym!("xmlSetStructuredErrorFunc", SetGlobalErrorsFn),
            new_parser_ctxt: sym!("xmlRelaxNGNewParserCtxt", NewParserCtxtFn),
            set_parser_structured_errors: sym!(
                "xmlRelaxNGSetParserStructuredErrors",
                SetCtxtErrorsFn
            ),
            parse: sym!("xmlRelaxNGParse", PtrToPtrFn),
            free_parser_ctxt: sym!("xmlRelaxNGFreeParserCtxt", FreeFn),
            free_schema: sym!("xmlRelaxNGFree", FreeFn),
            new_valid_ctxt: sym!("xmlRelaxNGNewValidCtxt", PtrToPtrFn),
            set_valid_structured_errors: sym!(
                "xmlRelaxNGSetValidStructuredErrors",
                SetCtxtErrorsFn
            ),
            validate_doc: sym!("xmlRelaxNGValidateDoc", ValidateDocFn),
            free_valid_ctxt: sym!("xmlRelaxNGFreeValidCtxt", FreeFn),
            read_memory: sym!("xmlReadMemory", ReadMemoryFn),
            free_doc: sym!("xmlFreeDoc", FreeFn),
        };
        // SAFETY: resolved above; xmlInitParser may be called more than once, and
        // a null context with a no-op handler only stops libxml2 printing.
        unsafe {
            (api.init_parser)();
            (api.set_structured_error_func)(std::ptr::null_mut(), Some(ignore));
        }
        Ok(Libxml2 { api })
    }

    /// Compiles the RelaxNG schema in file `path` (its includes and external
    /// references resolved relative to it).
    ///
    /// # Errors
    /// libxml2's messages when the schema cannot be read or compiled.
    pub fn compile(&self, path: &std::path::Path) -> Result<Schema<'_>, String> {
        let url = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("{}: NUL in path", path.display()))?;
        let mut messages: Vec<String> = Vec::new();
        // SAFETY: a parser context for a valid C string; errors go to `collect`
        // with `messages`, which outlives the context (freed before returning).
        let schema = unsafe {
            let ctxt = (self.api.new_parser_ctxt)(url.as_ptr());
            if ctxt.is_null() {
                return Err(format!("{}: no parser context", path.display()));
            }
            (self.api.set_parser_structured_errors)(
                ctxt,
                Some(collect),
                (&mut messages as *mut Vec<String>).cast(),
            );
            let schema = (self.api.parse)(ctxt);
            (self.api.free_parser_ctxt)(ctxt);
            schema
        };
        match NonNull::new(schema) {
            Some(ptr) => Ok(Schema { lib: self, ptr }),
            None => Err(format!(
                "{}: {}",
                path.display(),
                if messages.is_empty() {
                    "cannot compile the schema".into()
                } else {
                    messages.join("; ")
                }
            )),
        }
    }

    /// Validates the XML document `text` against `schema`.
    ///
    /// # Errors
    /// The document is not well-formed, or libxml2's first messages about why it
    /// does not validate.
    pub fn validate(&self, schema: &Schema<'_>, text: &str) -> Result<(), String> {
        let len = c_int::try_from(text.len()).map_err(|_| "document too large to validate")?;
        let mut messages: Vec<String> = Vec::new();
        // SAFETY: `text` is valid for `len` bytes during the call; the document and
        // the validation context are freed before returning; errors go to
        // `collect` with `messages`, which outlives both.
        let verdict = unsafe {
            let doc = (self.api.read_memory)(
                text.as_ptr().cast(),
                len,
                c"cib.xml".as_ptr(),
                std::ptr::null(),
                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING,
            );
            if doc.is_null() {
                return Err("the document is not well-formed XML".into());
            }
            let vctxt = (self.api.new_valid_ctxt)(schema.ptr.as_ptr());
            if vctxt.is_null() {
                (self.api.free_doc)(doc);
                return Err("no validation context".into());
            }
            (self.api.set_valid_structured_errors)(
                vctxt,
                Some(collect),
                (&mut messages as *mut Vec<String>).cast(),
            );
            let v = (self.api.validate_doc)(vctxt, doc);
            (self.api.free_valid_ctxt)(vctxt);
            (self.api.free_doc)(doc);
            v
        };
        match verdict {
            0 => Ok(()),
            _ if messages.is_empty() => Err("does not validate".into()),
            _ => Err(messages.join("; ")),
        }
    }
}

/// A compiled schema, freed on drop.
pub struct Schema<'a> {
    lib: &'a Libxml2,
    ptr: NonNull<c_void>,
}

impl Drop for Schema<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from xmlRelaxNGParse and is freed exactly once.
        unsafe { (self.lib.api.free_schema)(self.ptr.as_ptr()) }
    }
}

// SAFETY: a compiled libxml2 RelaxNG schema is plain heap data with no thread
// affinity; `PacemakerSchemas` only touches it with its mutex held, so it is
// never used from two threads at once.
unsafe impl Send for Schema<'_> {}

/// The process's libxml2, loaded on first use.
pub fn libxml2() -> Result<&'static Libxml2, String> {
    static LIB: std::sync::OnceLock<Result<Libxml2, String>> = std::sync::OnceLock::new();
    LIB.get_or_init(Libxml2::load)
        .as_ref()
        .map_err(Clone::clone)
}
