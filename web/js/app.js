// The page's entry point: a hash router. It knows the signed-in user, draws the navigation and
// hands the rest of the screen to a page from pages/. Pages never import this module: they
// navigate by setting location.hash.

import { api, ApiError } from "./api.js";
import { html, main, render, showError } from "./dom.js";
import { currentLanguage, setLanguage, t } from "./i18n.js";
import { campaignPage } from "./pages/campaign.js";
import { campaignsPage } from "./pages/campaigns.js";
import { guidesPage } from "./pages/guides.js";
import { keysPage } from "./pages/keys.js";
import { landingPage } from "./pages/landing.js";
import { sendersPage } from "./pages/senders.js";
import { settingsPage } from "./pages/settings.js";
import { suppressionsPage } from "./pages/suppressions.js";
import { wizard } from "./pages/wizard.js";

let me = null;

async function loadMe() {
  try {
    me = await api("GET", "/v1/me");
  } catch {
    me = null;
  }
  return me;
}

// The language switched from inside the open phone menu: the menu stays open after the redraw.
let keepMenuOpen = false;

// Focus on the control `step` Tab stops from `element` (as the Tab the person pressed would have).
function focusBeside(element, step) {
  const stops = [...document.querySelectorAll("a[href], button, input, select, textarea, [tabindex='0']")]
    .filter((e) => !e.disabled && e.offsetParent !== null);
  (stops[stops.indexOf(element) + step] ?? element)?.focus();
}

function renderNav() {
  const nav = document.getElementById("nav");
  nav.setAttribute("aria-label", t("nav.main"));
  const lang = currentLanguage();
  const links = me
    ? html`<a href="#/campaigns">${t("nav.campaigns")}</a><a href="#/new" class="primary-link">${t("nav.new")}</a>
       <a href="#/senders">${t("nav.senders")}</a><a href="#/suppressions">${t("nav.suppressions")}</a>
       <a href="#/guides">${t("nav.guides")}</a>
       <a href="#/keys">${t("nav.keys")}</a><a href="#/settings">${t("nav.settings")}</a>
       <button type="button" id="logout" class="link">${t("nav.logout")}</button>`
    : html`<a href="#/guides">${t("nav.guides")}</a>`;
  // On a phone the signed-in menu folds behind one button (it took 270 px of a 375 px screen).
  render(nav, html`${me && html`<button type="button" class="menu-toggle" aria-expanded="false"
      aria-controls="nav-links">${t("nav.menu")}</button>`}
    <div id="nav-links" class="nav-links">${links}
    <label class="lang">${t("nav.language")}
      <select id="lang"><option value="en" ${lang === "en" ? "selected" : ""}>English</option>
      <option value="ru" ${lang === "ru" ? "selected" : ""}>Русский</option></select></label></div>`);
  const toggle = nav.querySelector(".menu-toggle");
  const fold = (open) => {
    nav.classList.toggle("open", open);
    toggle?.setAttribute("aria-expanded", String(open));
  };
  fold(keepMenuOpen && Boolean(toggle)); // a new page starts with the menu folded
  keepMenuOpen = false;
  toggle?.addEventListener("click", () => {
    fold(!nav.classList.contains("open"));
    if (nav.classList.contains("open")) nav.querySelector("#nav-links a")?.focus();
  });
  nav.onkeydown = (event) => { // the <nav> outlives each drawing: one handler, not one per route
    if (event.key === "Escape" && nav.classList.contains("open")) {
      fold(false);
      toggle.focus();
    }
  };
  // Arrow keys in a select fire "change" at every step: from the keyboard the language switches
  // on Enter or when focus leaves the menu, not on the first arrow (which redrew the page).
  const choose = document.getElementById("lang");
  let byKeys = false;
  // After the redraw focus is on the language control again, or — when Tab chose the language —
  // where that Tab was going, so the keyboard moves on instead of landing back on the menu.
  const apply = (step = 0) => {
    byKeys = false;
    if (choose.value === currentLanguage()) return;
    keepMenuOpen = nav.classList.contains("open");
    setLanguage(choose.value);
    route().then(() => {
      const select = document.getElementById("lang");
      if (step) focusBeside(select, step);
      else select?.focus();
    });
  };
  choose.addEventListener("keydown", (event) => {
    if (event.key === "Tab" && byKeys && choose.value !== currentLanguage()) {
      event.preventDefault();
      apply(event.shiftKey ? -1 : 1);
    } else if (event.key === "Enter") {
      event.preventDefault();
      apply();
    } else if (event.key.startsWith("Arrow") || ["Home", "End", "PageUp", "PageDown"].includes(event.key)) {
      byKeys = true;
    }
  });
  choose.addEventListener("change", () => { if (!byKeys) apply(); });
  choose.addEventListener("blur", () => { if (byKeys) apply(); });
  document.getElementById("logout")?.addEventListener("click", async () => {
    await api("POST", "/v1/auth/logout");
    me = null;
    location.hash = "#/";
  });
}

async function route() {
  document.documentElement.lang = currentLanguage();
  document.getElementById("tagline").textContent = t("app.tagline");
  const skipLink = document.querySelector("a.skip");
  if (skipLink) skipLink.textContent = t("nav.skip");
  const [, page, id, step] = (location.hash || "#/").split("/");
  if (me === null) await loadMe();
  renderNav();
  const publicPages = { "": landingPage, guides: () => guidesPage(id) };
  try {
    if (page in publicPages && (!me || page === "guides")) return await publicPages[page]();
    if (!me) return landingPage();
    switch (page) {
      case "new": return await wizard(null, 1);
      case "wizard": return await wizard(id, Number(step) || 1);
      case "campaign": return await campaignPage(id);
      case "senders": return await sendersPage();
      case "suppressions": return await suppressionsPage();
      case "keys": return await keysPage();
      case "settings": return settingsPage(me);
      default: return await campaignsPage();
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      me = null;
      return landingPage();
    }
    showError(main(), error);
  }
}

// The skip link moves focus to the page's content; it is not a route.
const skip = document.querySelector("a.skip");
skip?.addEventListener("click", (event) => {
  event.preventDefault();
  main().focus();
});

// After a page is drawn, a keyboard user starts at its heading, unless the page put focus somewhere
// itself (a wizard step's heading, a form's first field).
function focusHeading() {
  const active = document.activeElement;
  if (active && active !== document.body && main().contains(active)) return;
  const heading = main().querySelector("h1");
  if (!heading) return;
  heading.tabIndex = -1;
  heading.focus();
}

window.addEventListener("hashchange", () => {
  if (location.hash && !location.hash.startsWith("#/")) return;  // an in-page anchor, not a page
  route().then(focusHeading);
});
route();
