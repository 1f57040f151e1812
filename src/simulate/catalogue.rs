//! The simulated help desk's catalogue: common calls, and problems to inject as recurring bursts.
//!
//! Titles come in English and French with `{variables}` filled per ticket (host names, error
//! codes, user names …), so text clustering has real variation to see through.

/// One kind of call the desk gets.
#[derive(Debug, Clone, Copy)]
pub struct CallKind {
    /// Category.
    pub category: &'static str,
    /// Subcategory.
    pub subcategory: &'static str,
    /// Business service.
    pub service: &'static str,
    /// Configuration items it happens on (one is picked, unless the title names a host).
    pub items: &'static [&'static str],
    /// English title template.
    pub title_en: &'static str,
    /// French title template.
    pub title_fr: &'static str,
    /// English description template.
    pub description_en: &'static str,
    /// French description template.
    pub description_fr: &'static str,
    /// Relative frequency.
    pub weight: u32,
    /// Probability of escalation to tier 2.
    pub escalation: f64,
    /// Typical tier-1 handle time, minutes.
    pub handle_minutes: f64,
    /// Knowledge-base article of the standard fix, if one exists.
    pub kb_article: Option<&'static str>,
}

/// The common calls (the "ten most frequent help-desk calls" and their neighbours).
pub const CALLS: &[CallKind] = &[
    CallKind {
        category: "access",
        subcategory: "password_reset",
        service: "identity",
        items: &["AD-CORP"],
        title_en: "Password reset for {user}",
        title_fr: "Réinitialisation du mot de passe pour {user}",
        description_en: "User {user} forgot the password and cannot log in to {host}.",
        description_fr: "L'utilisateur {user} a oublié son mot de passe et ne peut pas se connecter à {host}.",
        weight: 18,
        escalation: 0.02,
        handle_minutes: 6.0,
        kb_article: Some("KB0001"),
    },
    CallKind {
        category: "access",
        subcategory: "account_locked",
        service: "identity",
        items: &["AD-CORP"],
        title_en: "Account locked out after failed logins ({user})",
        title_fr: "Compte verrouillé après plusieurs tentatives ({user})",
        description_en: "Account {user} was locked at {time} after {n} failed attempts.",
        description_fr: "Le compte {user} a été verrouillé à {time} après {n} tentatives échouées.",
        weight: 10,
        escalation: 0.03,
        handle_minutes: 7.0,
        kb_article: Some("KB0002"),
    },
    CallKind {
        category: "email",
        subcategory: "outlook",
        service: "email",
        items: &["EXCH-01", "EXCH-02"],
        title_en: "Outlook keeps asking for password on {host}",
        title_fr: "Outlook redemande sans cesse le mot de passe sur {host}",
        description_en: "Since this morning Outlook prompts for credentials every few minutes on {host}.",
        description_fr: "Depuis ce matin Outlook demande les identifiants toutes les quelques minutes sur {host}.",
        weight: 8,
        escalation: 0.15,
        handle_minutes: 18.0,
        kb_article: Some("KB0014"),
    },
    CallKind {
        category: "network",
        subcategory: "vpn",
        service: "remote-access",
        items: &["VPN-GW-01", "VPN-GW-02"],
        title_en: "VPN connection drops every few minutes (error {code})",
        title_fr: "La connexion VPN se coupe toutes les quelques minutes (erreur {code})",
        description_en: "Working from home, the VPN client on {host} disconnects with error {code}.",
        description_fr: "En télétravail, le client VPN sur {host} se déconnecte avec l'erreur {code}.",
        weight: 8,
        escalation: 0.3,
        handle_minutes: 22.0,
        kb_article: Some("KB0031"),
    },
    CallKind {
        category: "hardware",
        subcategory: "printer",
        service: "printing",
        items: &["PRN-PAR-01", "PRN-PAR-02", "PRN-LYO-01", "PRN-BOS-01"],
        title_en: "Printer {printer} not printing, jobs stuck in queue",
        title_fr: "L'imprimante {printer} n'imprime plus, travaux bloqués",
        description_en: "Print jobs sent to {printer} from {host} stay in the queue.",
        description_fr: "Les impressions envoyées vers {printer} depuis {host} restent dans la file.",
        weight: 7,
        escalation: 0.2,
        handle_minutes: 15.0,
        kb_article: Some("KB0007"),
    },
    CallKind {
        category: "hardware",
        subcategory: "laptop",
        service: "workplace",
        items: &[],
        title_en: "Laptop {host} very slow after update",
        title_fr: "Portable {host} très lent après la mise à jour",
        description_en: "After last night's update {host} takes {n} minutes to start.",
        description_fr: "Depuis la mise à jour d'hier soir {host} met {n} minutes à démarrer.",
        weight: 6,
        escalation: 0.35,
        handle_minutes: 30.0,
        kb_article: None,
    },
    CallKind {
        category: "software",
        subcategory: "install",
        service: "workplace",
        items: &[],
        title_en: "Request to install {app} on {host}",
        title_fr: "Demande d'installation de {app} sur {host}",
        description_en: "Please install {app} on {host} for {user}.",
        description_fr: "Merci d'installer {app} sur {host} pour {user}.",
        weight: 7,
        escalation: 0.05,
        handle_minutes: 12.0,
        kb_article: Some("KB0040"),
    },
    CallKind {
        category: "network",
        subcategory: "wifi",
        service: "network",
        items: &["WLC-01", "WLC-02"],
        title_en: "No Wi-Fi connection in building {bldg}",
        title_fr: "Pas de connexion Wi-Fi dans le bâtiment {bldg}",
        description_en: "Several laptops cannot join the corporate Wi-Fi in building {bldg}.",
        description_fr: "Plusieurs portables ne se connectent pas au Wi-Fi de l'entreprise dans le bâtiment {bldg}.",
        weight: 5,
        escalation: 0.4,
        handle_minutes: 20.0,
        kb_article: None,
    },
    CallKind {
        category: "software",
        subcategory: "teams",
        service: "collaboration",
        items: &["M365"],
        title_en: "Teams calls have no audio on {host}",
        title_fr: "Pas de son dans les appels Teams sur {host}",
        description_en: "Headset works elsewhere but Teams has no audio on {host}.",
        description_fr: "Le casque fonctionne ailleurs mais Teams n'a pas de son sur {host}.",
        weight: 5,
        escalation: 0.1,
        handle_minutes: 14.0,
        kb_article: Some("KB0052"),
    },
    CallKind {
        category: "access",
        subcategory: "permissions",
        service: "file-services",
        items: &["FS-PAR-01", "FS-BOS-01"],
        title_en: "Need access to shared folder {path}",
        title_fr: "Besoin d'accès au dossier partagé {path}",
        description_en: "{user} needs read/write access to {path} for a project.",
        description_fr: "{user} a besoin d'un accès en lecture/écriture à {path} pour un projet.",
        weight: 6,
        escalation: 0.1,
        handle_minutes: 9.0,
        kb_article: Some("KB0060"),
    },
    CallKind {
        category: "hardware",
        subcategory: "monitor",
        service: "workplace",
        items: &[],
        title_en: "Second monitor not detected on {host}",
        title_fr: "Deuxième écran non détecté sur {host}",
        description_en: "The external monitor stays black when connected to {host}.",
        description_fr: "L'écran externe reste noir une fois branché sur {host}.",
        weight: 3,
        escalation: 0.15,
        handle_minutes: 12.0,
        kb_article: None,
    },
    CallKind {
        category: "software",
        subcategory: "erp",
        service: "erp",
        items: &["SAP-PRD"],
        title_en: "SAP transaction {tx} fails with error {code}",
        title_fr: "La transaction SAP {tx} échoue avec l'erreur {code}",
        description_en: "Running {tx} returns error {code} for user {user}.",
        description_fr: "L'exécution de {tx} renvoie l'erreur {code} pour l'utilisateur {user}.",
        weight: 4,
        escalation: 0.55,
        handle_minutes: 25.0,
        kb_article: None,
    },
    CallKind {
        category: "email",
        subcategory: "mailbox_full",
        service: "email",
        items: &["EXCH-01", "EXCH-02"],
        title_en: "Mailbox full, cannot send e-mails ({user})",
        title_fr: "Boîte aux lettres pleine, impossible d'envoyer des e-mails ({user})",
        description_en: "Mailbox of {user} reached its quota of {n} GB.",
        description_fr: "La boîte de {user} a atteint son quota de {n} Go.",
        weight: 4,
        escalation: 0.05,
        handle_minutes: 8.0,
        kb_article: Some("KB0019"),
    },
    CallKind {
        category: "telephony",
        subcategory: "desk_phone",
        service: "telephony",
        items: &["PBX-01"],
        title_en: "Desk phone {ext} has no dial tone",
        title_fr: "Le téléphone fixe {ext} n'a pas de tonalité",
        description_en: "Extension {ext} shows 'no service' since {time}.",
        description_fr: "Le poste {ext} affiche « pas de service » depuis {time}.",
        weight: 2,
        escalation: 0.3,
        handle_minutes: 16.0,
        kb_article: None,
    },
    CallKind {
        category: "security",
        subcategory: "phishing",
        service: "security",
        items: &["MAIL-FILTER"],
        title_en: "Suspicious e-mail received from {email}",
        title_fr: "E-mail suspect reçu de {email}",
        description_en: "{user} received a message from {email} asking to confirm credentials.",
        description_fr: "{user} a reçu un message de {email} demandant de confirmer ses identifiants.",
        weight: 3,
        escalation: 0.25,
        handle_minutes: 10.0,
        kb_article: Some("KB0077"),
    },
    CallKind {
        category: "software",
        subcategory: "browser",
        service: "intranet",
        items: &["WEB-INTRA"],
        title_en: "Intranet page {url} shows certificate error",
        title_fr: "La page intranet {url} affiche une erreur de certificat",
        description_en: "Opening {url} from {host} shows NET::ERR_CERT_DATE_INVALID.",
        description_fr: "L'ouverture de {url} depuis {host} affiche NET::ERR_CERT_DATE_INVALID.",
        weight: 2,
        escalation: 0.45,
        handle_minutes: 11.0,
        kb_article: None,
    },
];

/// A problem to inject as a burst of similar tickets on one configuration item.
#[derive(Debug, Clone, Copy)]
pub struct ProblemKind {
    /// Category.
    pub category: &'static str,
    /// Subcategory.
    pub subcategory: &'static str,
    /// Business service.
    pub service: &'static str,
    /// Configuration item prefix; a site suffix makes it specific.
    pub item: &'static str,
    /// English title template.
    pub title_en: &'static str,
    /// French title template.
    pub title_fr: &'static str,
    /// English description template.
    pub description_en: &'static str,
    /// French description template.
    pub description_fr: &'static str,
}

/// Problems that are not common calls: each appears only as an injected burst.
pub const PROBLEMS: &[ProblemKind] = &[
    ProblemKind {
        category: "storage",
        subcategory: "network_drive",
        service: "file-services",
        item: "FS",
        title_en: "Shared drive {drive} disconnects after login on {host}",
        title_fr: "Le lecteur réseau {drive} se déconnecte après l'ouverture de session sur {host}",
        description_en: "Drive {drive} is mapped at login then shows a red cross a few minutes later.",
        description_fr: "Le lecteur {drive} est connecté à l'ouverture de session puis affiche une croix rouge quelques minutes après.",
    },
    ProblemKind {
        category: "facilities",
        subcategory: "badge_reader",
        service: "physical-access",
        item: "BADGE",
        title_en: "Badge reader at entrance {door} rejects valid badges",
        title_fr: "Le lecteur de badge de l'entrée {door} refuse les badges valides",
        description_en: "Badge of {user} is refused at entrance {door}, red light and beep.",
        description_fr: "Le badge de {user} est refusé à l'entrée {door}, voyant rouge et bip.",
    },
    ProblemKind {
        category: "applications",
        subcategory: "payroll",
        service: "hr-portal",
        item: "PAYROLL",
        title_en: "Payroll portal returns HTTP 500 when submitting timesheet",
        title_fr: "Le portail de paie renvoie une erreur HTTP 500 lors de la saisie des temps",
        description_en: "Submitting the timesheet for week {n} fails with HTTP 500 (request id {code}).",
        description_fr: "La soumission de la feuille de temps de la semaine {n} échoue avec une erreur HTTP 500 (requête {code}).",
    },
    ProblemKind {
        category: "hardware",
        subcategory: "scanner",
        service: "printing",
        item: "MFP",
        title_en: "Scanner on floor {floor} sends blank PDF by e-mail",
        title_fr: "Le scanner de l'étage {floor} envoie des PDF vides par e-mail",
        description_en: "Scans from the floor {floor} copier arrive as empty PDF attachments.",
        description_fr: "Les numérisations du copieur de l'étage {floor} arrivent en pièces jointes PDF vides.",
    },
    ProblemKind {
        category: "applications",
        subcategory: "crm",
        service: "crm",
        item: "CRM",
        title_en: "CRM export to Excel times out after {n} seconds",
        title_fr: "L'export du CRM vers Excel expire après {n} secondes",
        description_en: "Exporting the pipeline report to Excel stops with a timeout after {n} s.",
        description_fr: "L'export du rapport de pipeline vers Excel s'arrête sur un délai dépassé après {n} s.",
    },
    ProblemKind {
        category: "hardware",
        subcategory: "docking_station",
        service: "workplace",
        item: "DOCK",
        title_en: "Docking station firmware update disables USB ports on {host}",
        title_fr: "La mise à jour du firmware de la station d'accueil désactive les ports USB sur {host}",
        description_en: "After the dock firmware update, keyboard and mouse on {host} stop working.",
        description_fr: "Après la mise à jour du firmware de la station, clavier et souris de {host} ne fonctionnent plus.",
    },
    ProblemKind {
        category: "facilities",
        subcategory: "meeting_room",
        service: "collaboration",
        item: "ROOM",
        title_en: "Meeting room {room} display shows no signal",
        title_fr: "L'écran de la salle {room} n'affiche aucun signal",
        description_en: "The display in room {room} says 'no signal' with the HDMI cable and the wireless dongle.",
        description_fr: "L'écran de la salle {room} indique « aucun signal » avec le câble HDMI et le boîtier sans fil.",
    },
    ProblemKind {
        category: "applications",
        subcategory: "citrix",
        service: "virtual-desktop",
        item: "CTX",
        title_en: "Citrix session freezes when opening {app}",
        title_fr: "La session Citrix se fige à l'ouverture de {app}",
        description_en: "The published desktop freezes for {n} seconds whenever {app} starts.",
        description_fr: "Le bureau publié se fige pendant {n} secondes à chaque lancement de {app}.",
    },
];

/// Applications named in titles.
pub const APPS: &[&str] = &[
    "Visual Studio Code",
    "Adobe Reader",
    "7-Zip",
    "Power BI Desktop",
    "Notepad++",
    "Zoom",
    "Python 3.12",
    "AutoCAD",
];

/// Sites, for host and item names.
pub const SITES: &[&str] = &["PAR", "LYO", "BOS", "MTL", "NYC"];

/// Tenants (client organisations of the desk).
pub const TENANTS: &[&str] = &["acme", "globex", "initech"];
