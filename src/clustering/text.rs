//! Ticket text → comparable tokens, for recurring-issue detection.
//!
//! 1. Lower-case, fold French accents (é → e, œ → oe), and mask what varies between tickets
//!    that report the same problem: URLs, e-mail addresses, UNC/Windows/Unix paths, IPv4
//!    addresses, hex codes, identifiers mixing letters and digits (host names, ticket and
//!    transaction ids), and plain numbers become `<url>`, `<email>`, `<path>`, `<ip>`, `<hex>`,
//!    `<id>`, `<num>`.
//! 2. Detect English or French from stop-word counts.
//! 3. French: replace help-desk phrases and words by their English equivalents from a
//!    glossary (built in, extended by configuration), so both languages meet on one vocabulary.
//! 4. Tokenise, drop stop words of both languages, and stem with Snowball (English, or French
//!    for words the glossary does not know).
//!
//! The result is a deduplicated token list in first-seen order; equal texts give equal tokens.

use std::collections::{BTreeMap, HashSet};

use regex::Regex;
use rust_stemmers::{Algorithm, Stemmer};
use xxhash_rust::xxh3::xxh3_64;

/// Language of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// French.
    Fr,
}

const EN_STOP: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "at", "by", "from", "is",
    "are", "was", "be", "been", "it", "its", "this", "that", "my", "our", "your", "i", "we", "you",
    "he", "she", "they", "me", "us", "can", "cannot", "not", "no", "please", "when", "after",
    "before", "every", "few", "very", "keeps", "has", "have", "had", "do", "does", "did", "as",
    "but", "if", "so", "than", "too", "also", "again", "since", "all", "any", "some",
];

const FR_STOP: &[&str] = &[
    "le", "la", "les", "l", "un", "une", "des", "du", "de", "d", "et", "ou", "a", "au", "aux",
    "en", "dans", "sur", "pour", "par", "avec", "sans", "ne", "n", "pas", "plus", "se", "s", "ce",
    "cette", "ces", "mon", "ma", "mes", "notre", "nos", "votre", "vos", "je", "j", "nous", "il",
    "elle", "ils", "on", "est", "sont", "qui", "que", "qu", "apres", "avant", "tres", "toutes",
    "tous", "tout", "quelques", "depuis", "encore", "cesse", "merci", "mais", "si", "puis", "lors",
];

/// Built-in French → English help-desk glossary; phrases are matched before words.
pub const GLOSSARY: &[(&str, &str)] = &[
    ("mot de passe", "password"),
    ("mots de passe", "password"),
    ("boite aux lettres", "mailbox"),
    ("boite mail", "mailbox"),
    ("mise a jour", "update"),
    ("ouverture de session", "login"),
    ("lecteur reseau", "shared drive"),
    ("lecteur de badge", "badge reader"),
    ("ecran bleu", "blue screen"),
    ("tonalite", "dial tone"),
    ("reinitialisation", "reset"),
    ("reinitialiser", "reset"),
    ("compte", "account"),
    ("verrouille", "locked"),
    ("bloque", "locked"),
    ("bloques", "stuck"),
    ("tentatives", "attempts"),
    ("redemande", "asks"),
    ("connexion", "connection"),
    ("connecter", "connect"),
    ("deconnecte", "disconnects"),
    ("coupe", "drops"),
    ("erreur", "error"),
    ("imprimante", "printer"),
    ("imprime", "printing"),
    ("impression", "printing"),
    ("travaux", "jobs"),
    ("file", "queue"),
    ("portable", "laptop"),
    ("ordinateur", "computer"),
    ("lent", "slow"),
    ("lente", "slow"),
    ("demande", "request"),
    ("installation", "install"),
    ("installer", "install"),
    ("batiment", "building"),
    ("son", "audio"),
    ("appels", "calls"),
    ("appel", "call"),
    ("acces", "access"),
    ("dossier", "folder"),
    ("partage", "shared"),
    ("ecran", "monitor"),
    ("detecte", "detected"),
    ("deuxieme", "second"),
    ("echoue", "fails"),
    ("plante", "crashes"),
    ("pleine", "full"),
    ("envoyer", "send"),
    ("recevoir", "receive"),
    ("recu", "received"),
    ("telephone", "phone"),
    ("fixe", "desk"),
    ("suspect", "suspicious"),
    ("affiche", "shows"),
    ("certificat", "certificate"),
    ("reseau", "network"),
    ("entree", "entrance"),
    ("refuse", "rejects"),
    ("valides", "valid"),
    ("logiciel", "software"),
    ("serveur", "server"),
    ("messagerie", "email"),
    ("courriel", "email"),
    ("panne", "outage"),
    ("impossible", "cannot"),
    ("portail", "portal"),
    ("paie", "payroll"),
    ("renvoie", "returns"),
    ("saisie des temps", "timesheet"),
    ("feuille de temps", "timesheet"),
    ("soumission", "submit"),
    ("semaine", "week"),
    ("requete", "request"),
    ("voyant", "light"),
    ("rouge", "red"),
    ("croix", "cross"),
    ("bip", "beep"),
    ("marche", "works"),
    ("fonctionne", "works"),
    ("fonctionnent", "working"),
    ("identifiants", "credentials"),
    ("matin", "morning"),
    ("etage", "floor"),
    ("envoie", "sends"),
    ("vide", "empty"),
    ("vides", "empty"),
    ("numerisation", "scan"),
    ("numerisations", "scans"),
    ("copieur", "copier"),
    ("arrivent", "arrive"),
    ("piece jointe", "attachment"),
    ("pieces jointes", "attachments"),
    ("expire", "times out"),
    ("secondes", "seconds"),
    ("rapport", "report"),
    ("arrete", "stops"),
    ("delai depasse", "timeout"),
    ("station d accueil", "docking station"),
    ("desactive", "disables"),
    ("clavier", "keyboard"),
    ("souris", "mouse"),
    ("salle", "room"),
    ("salle de reunion", "meeting room"),
    ("indique", "says"),
    ("sans fil", "wireless"),
    ("fige", "freezes"),
    ("gele", "freezes"),
    ("ouverture", "opening"),
    ("bureau publie", "published desktop"),
    ("lancement", "start"),
    ("redemarrage", "restart"),
    ("redemarrer", "restart"),
    ("mise a niveau", "upgrade"),
    ("sauvegarde", "backup"),
    ("pilote", "driver"),
    ("telechargement", "download"),
    ("lien", "link"),
    ("fichier", "file"),
    ("droits", "permissions"),
    ("autorisation", "permission"),
];

/// Most cached stems (a few MiB at most).
const STEM_CACHE: usize = 100_000;

/// English IT words French tickets use as they are: stemmed as English, so the French stemmer
/// does not make `scann` of `scanner`.
pub const LOANWORDS: &[&str] = &[
    "scanner",
    "router",
    "switch",
    "firewall",
    "proxy",
    "laptop",
    "desktop",
    "dock",
    "docking",
    "firmware",
    "hardware",
    "software",
    "browser",
    "cloud",
    "backup",
    "reboot",
    "bug",
    "token",
    "login",
    "logout",
    "webcam",
    "headset",
    "dongle",
    "player",
    "driver",
    "cluster",
    "server",
    "streaming",
    "upload",
    "spam",
    "phishing",
    "ticket",
    "workflow",
    "dashboard",
    "timeout",
];

/// Turns ticket text into tokens.
pub struct Analyzer {
    en: Stemmer,
    fr: Stemmer,
    /// Every mask in one alternation (one pass over the text); group `i + 1` is mask `i`.
    masks: Regex,
    mask_names: Vec<&'static str>,
    /// Phrases (several words) and single words, French → English, accent-folded.
    phrases: Vec<(String, String)>,
    words: BTreeMap<String, String>,
    en_stop: HashSet<&'static str>,
    /// Stems already computed, by language and word (help-desk vocabulary is small, and
    /// Snowball is most of the analysis time); cleared when it reaches [`STEM_CACHE`].
    stems: std::sync::Mutex<std::collections::HashMap<(bool, String), String>>,
    fr_stop: HashSet<&'static str>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("glossary", &(self.phrases.len() + self.words.len()))
            .finish_non_exhaustive()
    }
}

impl Default for Analyzer {
    fn default() -> Analyzer {
        Analyzer::new(&BTreeMap::new())
    }
}

impl Analyzer {
    /// An analyzer with the built-in glossary extended (and overridden) by `extra`.
    pub fn new(extra: &BTreeMap<String, String>) -> Analyzer {
        // In order of precedence: at one position the first that matches wins.
        let masks: [(&str, &'static str); 9] = [
            (r"https?://\S+", " <url> "),
            (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", " <email> "),
            (r"\\\\[^\s\\]+(?:\\[^\s\\]+)*\\?", " <path> "),
            (r"\b[a-z]:\\\S*", " <path> "),
            (r"(?:^|\s)/[\w.-]+(?:/[\w.-]+)+/?", " <path> "),
            (r"\b\d{1,3}(?:\.\d{1,3}){3}\b", " <ip> "),
            (r"\b0x[0-9a-f]+\b", " <hex> "),
            // Words of letters, digits, `-` and `_` holding both a letter and a digit.
            (r"\b[\w-]*(?:[a-z][\w-]*\d|\d[\w-]*[a-z])[\w-]*\b", " <id> "),
            (r"\b\d+\b", " <num> "),
        ];
        let alternation: Vec<String> = masks.iter().map(|(re, _)| format!("({re})")).collect();
        let mask_names = masks.iter().map(|(_, with)| *with).collect();
        let masks = Regex::new(&alternation.join("|")).expect("built-in pattern");
        let mut glossary: BTreeMap<String, String> = GLOSSARY
            .iter()
            .map(|(f, e)| (fold(f), e.to_string()))
            .chain(LOANWORDS.iter().map(|w| (w.to_string(), w.to_string())))
            .collect();
        for (f, e) in extra {
            glossary.insert(fold(f), e.to_lowercase());
        }
        let (mut phrases, mut words) = (Vec::new(), BTreeMap::new());
        for (f, e) in glossary {
            if f.contains(' ') {
                // `~` marks words already in English (normalised text never contains it).
                let e: Vec<String> = e.split(' ').map(|w| format!("~{w}")).collect();
                phrases.push((format!(" {f} "), format!(" {} ", e.join(" "))));
            } else {
                words.insert(f, e);
            }
        }
        // Longest phrases first, so "lecteur de badge" wins over shorter overlaps.
        phrases.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        Analyzer {
            en: Stemmer::create(Algorithm::English),
            fr: Stemmer::create(Algorithm::French),
            masks,
            mask_names,
            phrases,
            words,
            en_stop: EN_STOP.iter().copied().collect(),
            fr_stop: FR_STOP.iter().copied().collect(),
            stems: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The Snowball stem of `word` in `lang`, from the cache when it was seen before.
    fn stem(&self, lang: Lang, word: &str) -> String {
        let key = (lang == Lang::Fr, word.to_string());
        let mut cache = self.stems.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(&key) {
            return s.clone();
        }
        let stemmer = if lang == Lang::Fr { &self.fr } else { &self.en };
        let stem = stemmer.stem(word).into_owned();
        if cache.len() >= STEM_CACHE {
            cache.clear();
        }
        cache.insert(key, stem.clone());
        stem
    }

    /// Lower-cased, accent-folded, masked text, words separated by single spaces.
    pub fn normalize(&self, text: &str) -> String {
        self.masked_words(fold(&text.to_lowercase()))
    }

    /// Lower-cased text with what varies masked, words separated by single spaces.
    fn masked_words(&self, mut s: String) -> String {
        if self.masks.is_match(&s) {
            s = self
                .masks
                .replace_all(&s, |c: &regex::Captures<'_>| {
                    (1..c.len())
                        .find(|&i| c.get(i).is_some())
                        .map_or("", |i| self.mask_names[i - 1])
                })
                .into_owned();
        }
        let words: Vec<&str> = s
            .split(|c: char| !(c.is_alphanumeric() || c == '<' || c == '>'))
            .filter(|w| !w.is_empty())
            .collect();
        words.join(" ")
    }

    /// English or French, by stop-word counts (English on a tie).
    pub fn language(&self, normalized: &str) -> Lang {
        let (en, fr) = self.stop_words(normalized);
        if fr > en { Lang::Fr } else { Lang::En }
    }

    /// English and French stop words in normalised text.
    fn stop_words(&self, normalized: &str) -> (usize, usize) {
        let (mut en, mut fr) = (0, 0);
        for w in normalized.split(' ') {
            en += usize::from(self.en_stop.contains(w));
            fr += usize::from(self.fr_stop.contains(w));
        }
        (en, fr)
    }

    /// A ticket's text as the clusterer reads it: the title's tokens and, line by line, the
    /// description's, each line with a key (a hash of its normalised text) so that form text
    /// repeated across tickets can be recognised. Tokens are 64-bit hashes of the stems.
    /// The language is detected once for the whole ticket.
    pub fn analyze(&self, title: &str, description: Option<&str>) -> Analysis {
        // Each piece is normalised once; the language is decided over all of them.
        let title = self.normalize(title);
        let lines: Vec<String> = description
            .unwrap_or("")
            .lines()
            .map(|l| self.normalize(l))
            .filter(|l| !l.is_empty())
            .take(MAX_LINES)
            .collect();
        let (mut en, mut fr) = self.stop_words(&title);
        for l in &lines {
            let (e, f) = self.stop_words(l);
            en += e;
            fr += f;
        }
        let lang = if fr > en { Lang::Fr } else { Lang::En };
        let hashed = |normalized: &str| {
            let mut tokens = Vec::new();
            self.words(normalized, lang, |t| tokens.push(xxh3_64(t.as_bytes())));
            tokens
        };
        Analysis {
            title: hashed(&title),
            lines: lines
                .iter()
                .map(|l| Line {
                    key: xxh3_64(l.as_bytes()),
                    tokens: hashed(l),
                })
                .collect(),
        }
    }

    /// Calls `emit` with every token of normalised text in `lang` (stop words dropped,
    /// French glossary applied, stemmed), duplicates included.
    fn words(&self, normalized: &str, lang: Lang, mut emit: impl FnMut(&str)) {
        let mut text = format!(" {normalized} ");
        if lang == Lang::Fr {
            for (f, e) in &self.phrases {
                if text.contains(f.as_str()) {
                    text = text.replace(f.as_str(), e);
                }
            }
        }
        for w in text.split(' ').filter(|w| !w.is_empty()) {
            let token = if w.starts_with('<') {
                w.to_string()
            } else if let Some(english) = w.strip_prefix('~') {
                self.stem(Lang::En, english)
            } else if self.en_stop.contains(w) || self.fr_stop.contains(w) || w.len() < 2 {
                continue;
            } else if lang == Lang::Fr {
                match self.words.get(w) {
                    Some(e) => e
                        .split(' ')
                        .map(|p| self.stem(Lang::En, p))
                        .collect::<Vec<_>>()
                        .join(" "),
                    None => self.stem(Lang::Fr, w),
                }
            } else {
                self.stem(Lang::En, w)
            };
            for t in token.split(' ') {
                emit(t);
            }
        }
    }

    /// A title for display: lower-cased with accents kept, what varies masked (like
    /// [`Analyzer::normalize`]), words separated by single spaces.
    pub fn display(&self, text: &str) -> String {
        self.masked_words(text.to_lowercase())
    }
}

/// Description lines read per ticket (form text sits at the top; the rest of a long
/// description adds little and costs time).
pub const MAX_LINES: usize = 200;

/// A ticket's text as the clusterer reads it ([`Analyzer::analyze`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Token hashes of the title, in order, duplicates included.
    pub title: Vec<u64>,
    /// The description's non-empty lines.
    pub lines: Vec<Line>,
}

/// One description line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Hash of the line's normalised text.
    pub key: u64,
    /// Token hashes of the line, duplicates included.
    pub tokens: Vec<u64>,
}

/// Folds French accents and ligatures to ASCII letters.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            'à' | 'â' | 'ä' | 'á' => out.push('a'),
            'ç' => out.push('c'),
            'é' | 'è' | 'ê' | 'ë' => out.push('e'),
            'î' | 'ï' | 'í' => out.push('i'),
            'ô' | 'ö' | 'ó' => out.push('o'),
            'ù' | 'û' | 'ü' | 'ú' => out.push('u'),
            'ÿ' => out.push('y'),
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            '’' | '\'' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distinct token hashes of a one-line text, as the clusterer reads it.
    fn tokens(a: &Analyzer, text: &str) -> Vec<u64> {
        let mut seen = HashSet::new();
        let mut out = a.analyze(text, None).title;
        out.retain(|t| seen.insert(*t));
        out
    }

    fn hash(token: &str) -> u64 {
        xxh3_64(token.as_bytes())
    }

    #[test]
    fn masks_what_varies() {
        let a = Analyzer::default();
        assert_eq!(
            a.normalize(
                "VPN on LT-PAR-1337 fails: error 0x8005E026 for jane.doe@acme.example at 10.1.2.3"
            ),
            "vpn on <id> fails error <hex> for <email> at <ip>"
        );
        assert_eq!(
            a.normalize(r"Need access to \\fs-nyc\projects\p1219 and https://intranet/x?y=1"),
            "need access to <path> and <url>"
        );
        assert_eq!(
            a.normalize("SAP transaction ME21N fails, ticket INC0004364, 3 times"),
            "sap transaction <id> fails ticket <id> <num> times"
        );
        assert_eq!(
            a.normalize("Le téléphone fixe n'a pas de tonalité"),
            "le telephone fixe n a pas de tonalite"
        );
    }

    #[test]
    fn detects_the_language() {
        let a = Analyzer::default();
        assert_eq!(
            a.language(&a.normalize("La connexion VPN se coupe toutes les quelques minutes")),
            Lang::Fr
        );
        assert_eq!(
            a.language(&a.normalize("VPN connection drops every few minutes")),
            Lang::En
        );
    }

    #[test]
    fn english_and_french_variants_meet() {
        let a = Analyzer::default();
        let pairs = [
            (
                "VPN connection drops every few minutes (error 0x8005E026)",
                "La connexion VPN se coupe toutes les quelques minutes (erreur 0x800102F7)",
            ),
            (
                "Password reset for user0010@acme.example",
                "Réinitialisation du mot de passe pour user0012@initech.example",
            ),
            (
                "Shared drive S: disconnects after login on LT-NYC-1886",
                "Le lecteur réseau S: se déconnecte après l'ouverture de session sur LT-PAR-1050",
            ),
        ];
        for (en, fr) in pairs {
            let (te, tf) = (tokens(&a, en), tokens(&a, fr));
            let common = te.iter().filter(|t| tf.contains(t)).count();
            let union = te.len() + tf.len() - common;
            let jaccard = common as f64 / union as f64;
            assert!(jaccard >= 0.6, "{en} {te:?} / {fr} {tf:?}: {jaccard}");
        }
    }

    #[test]
    fn loanwords_are_stemmed_as_english() {
        let a = Analyzer::default();
        assert_eq!(
            tokens(&a, "Scanner on floor 3 sends blank PDF by e-mail")[0],
            hash("scanner")
        );
        assert_eq!(
            tokens(
                &a,
                "Le scanner de l'étage 3 envoie des PDF vides par e-mail"
            )[0],
            hash("scanner")
        );
    }

    #[test]
    fn extra_glossary_entries_apply() {
        let extra = BTreeMap::from([("souris".to_string(), "mouse".to_string())]);
        let a = Analyzer::new(&extra);
        assert!(tokens(&a, "La souris ne marche plus").contains(&hash("mous")));
    }
}
