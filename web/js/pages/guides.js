// Step-by-step mailbox setup guides, each step with a drawn (SVG) sketch of the screen to look for.

import { html, main, render } from "../dom.js";
import { currentLanguage, t } from "../i18n.js";

// [title, [ [step text, screen title, screen rows, highlighted row], … ], settings]
const GUIDES = {
  gmail: {
    title: "Gmail / Google Workspace",
    settings: "smtp.gmail.com · 465 · SSL/TLS",
    en: [
      ["Open your Google Account → Security, and turn on 2-Step Verification.", "Security", ["Password", "2-Step Verification", "Recovery email"], 1],
      ["Search for “App passwords”, type a name such as Sendpy, press Create.", "App passwords", ["App name: Sendpy", "Create"], 1],
      ["Copy the 16-letter password shown once, and paste it into Sendpy's password field.", "Your app password", ["abcd efgh ijkl mnop", "Done"], 0],
    ],
    ru: [
      ["Откройте «Аккаунт Google» → «Безопасность» и включите двухэтапную аутентификацию.", "Безопасность", ["Пароль", "Двухэтапная аутентификация", "Резервный адрес"], 1],
      ["Найдите «Пароли приложений», введите название, например Sendpy, и нажмите «Создать».", "Пароли приложений", ["Название: Sendpy", "Создать"], 1],
      ["Скопируйте 16-буквенный пароль (он показывается один раз) и вставьте его в поле пароля в Sendpy.", "Пароль приложения", ["abcd efgh ijkl mnop", "Готово"], 0],
    ],
  },
  yandex: {
    title: "Yandex Mail / Яндекс Почта",
    settings: "smtp.yandex.ru · 465 · SSL/TLS",
    en: [
      ["In Yandex ID open Security → App passwords.", "Security", ["Login methods", "App passwords", "Devices"], 1],
      ["Choose “Mail”, name it Sendpy and create the password.", "New app password", ["Mail", "Name: Sendpy", "Create"], 0],
      ["In Mail settings → Email clients, allow access via IMAP/SMTP with app passwords.", "Email clients", ["☑ imap.yandex.ru via IMAP", "☑ App passwords and OAuth tokens"], 1],
    ],
    ru: [
      ["В Яндекс ID откройте «Безопасность» → «Пароли приложений».", "Безопасность", ["Способы входа", "Пароли приложений", "Устройства"], 1],
      ["Выберите «Почта», назовите пароль Sendpy и создайте его.", "Новый пароль приложения", ["Почта", "Название: Sendpy", "Создать"], 0],
      ["В настройках Почты → «Почтовые программы» разрешите доступ по IMAP/SMTP с паролями приложений.", "Почтовые программы", ["☑ С сервера imap.yandex.ru", "☑ Пароли приложений и OAuth-токены"], 1],
    ],
  },
  mailru: {
    title: "Mail.ru",
    settings: "smtp.mail.ru · 465 · SSL/TLS",
    en: [
      ["Open account settings → Security → Passwords for external applications.", "Security", ["Two-factor authentication", "Passwords for external applications"], 1],
      ["Add a password: name Sendpy, access “Send mail (SMTP)”.", "New password", ["Name: Sendpy", "☑ SMTP", "Continue"], 1],
      ["Copy the generated password into Sendpy.", "Password created", ["xYz1AbC2dEf3GhI4", "Close"], 0],
    ],
    ru: [
      ["Откройте настройки аккаунта → «Безопасность» → «Пароли для внешних приложений».", "Безопасность", ["Двухфакторная аутентификация", "Пароли для внешних приложений"], 1],
      ["Добавьте пароль: название Sendpy, доступ «Отправка почты (SMTP)».", "Новый пароль", ["Название: Sendpy", "☑ SMTP", "Продолжить"], 1],
      ["Скопируйте созданный пароль в Sendpy.", "Пароль создан", ["xYz1AbC2dEf3GhI4", "Закрыть"], 0],
    ],
  },
  outlook: {
    title: "Outlook.com / Office 365",
    settings: "smtp-mail.outlook.com · 587 · STARTTLS (Office 365: smtp.office365.com)",
    en: [
      ["Office 365: your admin must enable “Authenticated SMTP” for the mailbox.", "Mail apps", ["☐ IMAP", "☑ Authenticated SMTP"], 1],
      ["With two-step verification on, create an app password under Security → Advanced security.", "Advanced security", ["App passwords", "Create a new app password"], 1],
      ["Use port 587 with STARTTLS; Outlook.com allows about 30 messages a minute.", "SMTP", ["smtp-mail.outlook.com", "587 · STARTTLS"], 1],
    ],
    ru: [
      ["Office 365: администратор должен включить для ящика «Authenticated SMTP».", "Почтовые приложения", ["☐ IMAP", "☑ Authenticated SMTP"], 1],
      ["При включённой двухэтапной проверке создайте пароль приложения в «Безопасность» → «Дополнительные параметры».", "Дополнительные параметры", ["Пароли приложений", "Создать пароль приложения"], 1],
      ["Используйте порт 587 и STARTTLS; Outlook.com пропускает около 30 писем в минуту.", "SMTP", ["smtp-mail.outlook.com", "587 · STARTTLS"], 1],
    ],
  },
  corporate: {
    title: { en: "Company mail server (SMTP relay)", ru: "Почтовый сервер компании (SMTP)" },
    settings: "your-relay.example.com · 587 · STARTTLS",
    en: [
      ["Ask your mail administrator for the SMTP server name, port and a login allowed to send as your address.", "Mail server", ["Host: smtp.company.com", "Port: 587", "Login: newsletter@company.com"], 0],
      ["Make sure the server has a valid TLS certificate for that name: Sendpy always checks it.", "Certificate", ["smtp.company.com", "Valid ✓"], 1],
      ["Ask for SPF and DKIM records for your domain so that recipients trust the mail.", "DNS", ["SPF: include:…", "DKIM: selector._domainkey"], 0],
    ],
    ru: [
      ["Узнайте у администратора почты имя SMTP-сервера, порт и логин, которому разрешено отправлять от вашего адреса.", "Почтовый сервер", ["Сервер: smtp.company.com", "Порт: 587", "Логин: newsletter@company.com"], 0],
      ["Убедитесь, что у сервера действительный TLS-сертификат на это имя: Sendpy всегда его проверяет.", "Сертификат", ["smtp.company.com", "Действителен ✓"], 1],
      ["Попросите записи SPF и DKIM для вашего домена, чтобы получатели доверяли письмам.", "DNS", ["SPF: include:…", "DKIM: selector._domainkey"], 0],
    ],
  },
};

function sketch(title, rows, highlight, number) {
  const height = 70 + rows.length * 34;
  return html`<svg class="sketch" viewBox="0 0 320 ${height}" role="img" aria-label="${title}" xmlns="http://www.w3.org/2000/svg">
    <rect x="1" y="1" width="318" height="${height - 2}" rx="10" fill="#fff" stroke="#9aa4b2"/>
    <rect x="1" y="1" width="318" height="26" rx="10" fill="#e8edf3"/>
    <circle cx="16" cy="14" r="4" fill="#e06c75"/><circle cx="30" cy="14" r="4" fill="#e5c07b"/><circle cx="44" cy="14" r="4" fill="#98c379"/>
    <text x="20" y="52" font-size="15" font-weight="bold" fill="#1a1a1a">${title}</text>
    ${rows.map((row, i) => html`<rect x="20" y="${64 + i * 34}" width="280" height="26" rx="5" fill="${i === highlight ? "#fff4cc" : "#f5f7fa"}" stroke="${i === highlight ? "#d99a00" : "#d5dbe3"}" stroke-width="${i === highlight ? 2 : 1}"/>
      <text x="30" y="${82 + i * 34}" font-size="13" fill="#1a1a1a">${row}</text>`)}
    <circle cx="296" cy="44" r="13" fill="#1f5eff"/><text x="296" y="49" font-size="14" text-anchor="middle" fill="#fff">${number}</text>
  </svg>`;
}

// Provider names are the same in every language; a title that is not has one per language.
const titleOf = (guide, lang) => (typeof guide.title === "string" ? guide.title : guide.title[lang]);

export function guidesPage(key) {
  const lang = currentLanguage();
  if (!key || !Object.hasOwn(GUIDES, key)) {
    render(main(), html`<h1>${t("guides.title")}</h1><ul class="guide-list">${Object.entries(GUIDES)
      .map(([k, g]) => html`<li><a href="#/guides/${k}">${titleOf(g, lang)}</a></li>`)}</ul>`);
    return;
  }
  const guide = GUIDES[key];
  render(main(), html`<p><a href="#/guides">← ${t("guides.title")}</a></p><h1>${titleOf(guide, lang)}</h1>
    <p><code>${guide.settings}</code></p>
    <ol class="guide">${guide[lang].map(([text, title, rows, highlight], i) =>
      html`<li><p>${text}</p>${sketch(title, rows, highlight, i + 1)}</li>`)}</ol>`);
}
