// FAPP web page. Plain JavaScript, no build step. Everything that comes
// from the mesh (names, languages, focus areas, messages) is put into the
// page with textContent only, never as HTML.
'use strict';

const ENUMS = {
  verfahren: ['VERHALTENSTHERAPIE', 'TIEFENPSYCHOLOGISCH_FUNDIERT', 'ANALYTISCH', 'SYSTEMISCH'],
  kostentraeger: ['GKV', 'PKV', 'BEIHILFE', 'SELBSTZAHLER', 'KOSTENERSTATTUNG'],
  terminart: ['SPRECHSTUNDE', 'AKUTBEHANDLUNG', 'PROBATORIK', 'THERAPIEPLATZ_KZT', 'THERAPIEPLATZ_LZT', 'GRUPPE_GRUNDVERSORGUNG', 'GRUPPENTHERAPIE'],
  altersgruppe: ['ERWACHSENE', 'KINDER_JUGENDLICHE'],
  setting: ['EINZEL', 'GRUPPE', 'MEHRPERSONEN'],
  modalitaet: ['PRAXIS', 'VIDEO'],
  geschlecht: ['WEIBLICH', 'MAENNLICH', 'DIVERS'],
  tageszeit: ['MORGENS', 'MITTAGS', 'ABENDS'],
  dauer: ['50', '25', '100'],
};
const WINDOWS = { MORGENS: '07:00-12:00', MITTAGS: '12:00-17:00', ABENDS: '17:00-21:00' };

const T = {
  de: {
    skip: 'Zum Inhalt springen', title: 'Freie Therapieplätze', nav: 'Ansicht', tabPatient: 'Termin suchen', tabMine: 'Meine Reservierungen', tabTherapist: 'Für Praxen',
    loginTitle: 'Bitte anmelden', loginText: 'Diese Seite braucht einen Anmeldelink. Führen Sie auf diesem Gerät „fapp web“ aus und öffnen Sie den angezeigten Link.',
    searchTitle: 'Therapieplatz suchen',
    privacy: 'Ihre Suche bleibt auf diesem Gerät oder geht anonym an FAPP-Relays. Gespeichert wird nur eine Reservierung (Termin, der Kontakt, den Sie angeben, und ihr Stand), und zwar nur in Ihrem eigenen meshd auf diesem Gerät; Ihr Kontakt geht verschlüsselt nur an die Praxis.',
    plz: 'PLZ (Anfang genügt)', plzHelp: 'z. B. 10 für Berlin-Mitte; weniger Ziffern = größeres Gebiet', terminart: 'Terminart', verfahren: 'Verfahren', kostentraeger: 'Kostenträger',
    altersgruppe: 'Altersgruppe', setting: 'Setting', modalitaet: 'Ort', geschlecht: 'Geschlecht der Therapeut:in', sprache: 'Sprache (z. B. de, en, tr)', tageszeit: 'Tageszeit',
    barrierefrei: 'Barrierefreier Zugang', pathTitle: 'Welche Terminart brauche ich?',
    pathText: 'Zuerst kommt eine psychotherapeutische Sprechstunde. Danach folgen probatorische Sitzungen (Probatorik) zum Kennenlernen, dann der eigentliche Therapieplatz. Eine Akutbehandlung ist für dringende Fälle und braucht das Formular PTV 11 aus der Sprechstunde.',
    searchBtn: 'Suchen', mineTitle: 'Meine Reservierungen', mineNote: 'Der Stand ändert sich hier von selbst, sobald die Praxis antwortet.',
    therTitle: 'Für Praxen', profileTitle: 'Öffentliches Profil', pName: 'Name der Praxis', pPlz: 'PLZ der Praxis', pSprachen: 'Sprachen (Kürzel, mit Komma)',
    pSchwerpunkte: 'Schwerpunkte (mit Komma)', pSave: 'Profil speichern', slotsTitle: 'Termine', sStart: 'Beginn (Uhrzeit Berlin)', sDauer: 'Dauer',
    sWeekly: 'wöchentlich wiederkehrend', sBis: 'bis (bei wöchentlich)', sPublish: 'Termin veröffentlichen', incomingTitle: 'Anfragen',
    any: 'egal', searching: 'Suche läuft …', loading: 'Wird geladen …', found: n => n === 1 ? '1 freier Termin gefunden.' : n + ' freie Termine gefunden.',
    none: p => `Keine freien Termine für PLZ „${p}…“ mit diesen Filtern. Versuchen Sie weniger Ziffern der PLZ (z. B. „${p.slice(0, 1)}“) oder lassen Sie Filter weg.`,
    incomplete: 'Nicht alle Gebiete haben geantwortet; es kann weitere Termine geben.',
    reserve: 'Reservieren', kontakt: 'Wie erreicht Sie die Praxis? (E-Mail oder Telefon)', kontaktHelp: 'Nur die Praxis sieht das, verschlüsselt.',
    ptv11: 'Angaben aus dem PTV 11 (für Akutbehandlung)', send: 'Anfrage senden', reserved: 'Anfrage gesendet. Den Stand sehen Sie unter „Meine Reservierungen“.',
    noMine: 'Sie haben noch keine Reservierungen. Suchen Sie unter „Termin suchen“.', cancel: 'Stornieren', cancelled: 'Storniert.',
    certified: 'Zulassung geprüft', uncertified: 'Zulassung nicht geprüft', languages: 'Sprachen', focus: 'Schwerpunkte', min: 'Min.', weekly: 'wöchentlich',
    message: 'Nachricht der Praxis', noSlots: 'Noch keine Termine. Legen Sie unten einen an.', withdraw: 'Zurückziehen', pending: t => `Änderungen gehen um ${t} ins Netz (gebündelt, damit niemand Reservierungen ablesen kann).`,
    edit: 'Bearbeiten', sSave: 'Änderung speichern', sCancel: 'Bearbeitung abbrechen', changed: 'Änderung gespeichert.',
    editing: w => `Sie bearbeiten den Termin ${w}. Ändern Sie die Felder oben und speichern Sie.`,
    notEditable: 'Dieser Termin ist vorgemerkt oder vergeben und kann nicht geändert werden: Die Patientin oder der Patient hat ihn so angefragt. Beantworten Sie zuerst die Anfrage (oder ziehen Sie den Termin zurück).',
    published: 'Veröffentlicht.', saved: 'Profil gespeichert.', noIncoming: 'Keine Anfragen.', confirm: 'Bestätigen', decline: 'Ablehnen', answer: 'Nachricht an Patient:in (z. B. Adresse)',
    credTitle: 'Zulassungsnachweis', credStatus: 'Status', validTo: 'gültig bis', issuer: 'Aussteller', identity: 'Ihre Kennung für den Aussteller', credImport: 'Nachweis einfügen (fapp-credential:…)', credBtn: 'Nachweis übernehmen',
    error: 'Fehler: ', offline: 'Keine Verbindung zum lokalen meshd.', contact: 'Kontakt', start: 'Termin',
    st: { ANGEFRAGT: 'Angefragt', GEHALTEN: 'Vorgemerkt', BESTAETIGT: 'Bestätigt', ABGELEHNT: 'Abgelehnt', ABGELAUFEN: 'Abgelaufen', STORNIERT_PATIENT: 'Von Ihnen storniert', STORNIERT_THERAPEUT: 'Von der Praxis storniert', FREI: 'frei', VERGEBEN: 'vergeben' },
    cred: { missing: 'kein Nachweis', valid: 'gültig', 'not-yet-valid': 'noch nicht gültig', expired: 'abgelaufen', 'untrusted-issuer': 'Aussteller nicht vertrauenswürdig', revoked: 'widerrufen' },
    e: {
      VERHALTENSTHERAPIE: 'Verhaltenstherapie', TIEFENPSYCHOLOGISCH_FUNDIERT: 'Tiefenpsychologisch fundiert', ANALYTISCH: 'Analytisch', SYSTEMISCH: 'Systemisch',
      GKV: 'Gesetzlich (GKV)', PKV: 'Privat (PKV)', BEIHILFE: 'Beihilfe', SELBSTZAHLER: 'Selbstzahler', KOSTENERSTATTUNG: 'Kostenerstattung',
      SPRECHSTUNDE: 'Sprechstunde', AKUTBEHANDLUNG: 'Akutbehandlung', PROBATORIK: 'Probatorik', THERAPIEPLATZ_KZT: 'Therapieplatz (Kurzzeit)', THERAPIEPLATZ_LZT: 'Therapieplatz (Langzeit)',
      GRUPPE_GRUNDVERSORGUNG: 'Gruppe (Grundversorgung)', GRUPPENTHERAPIE: 'Gruppentherapie', ERWACHSENE: 'Erwachsene', KINDER_JUGENDLICHE: 'Kinder und Jugendliche',
      EINZEL: 'Einzel', GRUPPE: 'Gruppe', MEHRPERSONEN: 'Mehrpersonen', PRAXIS: 'in der Praxis', VIDEO: 'per Video', WEIBLICH: 'weiblich', MAENNLICH: 'männlich', DIVERS: 'divers',
      MORGENS: 'morgens (7–12 Uhr)', MITTAGS: 'nachmittags (12–17 Uhr)', ABENDS: 'abends (17–21 Uhr)', 50: '50 Minuten', 25: '25 Minuten', 100: '100 Minuten',
    },
  },
  en: {
    skip: 'Skip to content', title: 'Free therapy places', nav: 'View', tabPatient: 'Find an appointment', tabMine: 'My reservations', tabTherapist: 'For practices',
    loginTitle: 'Please log in', loginText: 'This page needs a login link. Run “fapp web” on this device and open the link it shows.',
    searchTitle: 'Find a therapy place',
    privacy: 'Your search stays on this device or goes anonymously to FAPP relays. Only a reservation is stored (the appointment, the contact you give and its state), and only in your own meshd on this device; your contact goes encrypted to the practice alone.',
    plz: 'Postal code (the start is enough)', plzHelp: 'e.g. 10 for central Berlin; fewer digits = larger area', terminart: 'Kind of appointment', verfahren: 'Method', kostentraeger: 'Insurance',
    altersgruppe: 'Age group', setting: 'Setting', modalitaet: 'Where', geschlecht: 'Therapist’s gender', sprache: 'Language (e.g. de, en, tr)', tageszeit: 'Time of day',
    barrierefrei: 'Barrier-free entrance', pathTitle: 'Which kind of appointment do I need?',
    pathText: 'First comes a consultation (Sprechstunde). Then trial sessions (Probatorik) to get to know each other, then the therapy place itself. Acute treatment (Akutbehandlung) is for urgent cases and needs the PTV 11 form from the consultation.',
    searchBtn: 'Search', mineTitle: 'My reservations', mineNote: 'The state here changes by itself as soon as the practice answers.',
    therTitle: 'For practices', profileTitle: 'Public profile', pName: 'Practice name', pPlz: 'Practice postal code', pSprachen: 'Languages (codes, comma-separated)',
    pSchwerpunkte: 'Focus areas (comma-separated)', pSave: 'Save profile', slotsTitle: 'Appointments', sStart: 'Start (Berlin time)', sDauer: 'Duration',
    sWeekly: 'weekly recurring', sBis: 'until (when weekly)', sPublish: 'Publish appointment', incomingTitle: 'Requests',
    any: 'any', searching: 'Searching …', loading: 'Loading …', found: n => n === 1 ? '1 free appointment found.' : n + ' free appointments found.',
    none: p => `No free appointments for postal code “${p}…” with these filters. Try fewer digits (e.g. “${p.slice(0, 1)}”) or drop some filters.`,
    incomplete: 'Not every area answered; there may be more appointments.',
    reserve: 'Reserve', kontakt: 'How can the practice reach you? (e-mail or phone)', kontaktHelp: 'Only the practice sees this, encrypted.',
    ptv11: 'PTV 11 details (for acute treatment)', send: 'Send request', reserved: 'Request sent. See its state under “My reservations”.',
    noMine: 'You have no reservations yet. Search under “Find an appointment”.', cancel: 'Cancel', cancelled: 'Cancelled.',
    certified: 'License verified', uncertified: 'License not verified', languages: 'Languages', focus: 'Focus', min: 'min', weekly: 'weekly',
    message: 'Message from the practice', noSlots: 'No appointments yet. Add one below.', withdraw: 'Withdraw', pending: t => `Changes go out at ${t} (batched, so nobody can read reservations from them).`,
    edit: 'Edit', sSave: 'Save changes', sCancel: 'Cancel editing', changed: 'Changes saved.',
    editing: w => `You are editing the appointment ${w}. Change the fields above and save.`,
    notEditable: 'This appointment is held or taken and cannot be changed: a patient asked for it as it is. Answer the request first (or withdraw the appointment).',
    published: 'Published.', saved: 'Profile saved.', noIncoming: 'No requests.', confirm: 'Confirm', decline: 'Decline', answer: 'Message to the patient (e.g. address)',
    credTitle: 'License credential', credStatus: 'Status', validTo: 'valid until', issuer: 'Issuer', identity: 'Your identity for the issuer', credImport: 'Paste credential (fapp-credential:…)', credBtn: 'Import credential',
    error: 'Error: ', offline: 'No connection to the local meshd.', contact: 'Contact', start: 'Appointment',
    st: { ANGEFRAGT: 'Requested', GEHALTEN: 'Held', BESTAETIGT: 'Confirmed', ABGELEHNT: 'Declined', ABGELAUFEN: 'Expired', STORNIERT_PATIENT: 'Cancelled by you', STORNIERT_THERAPEUT: 'Cancelled by the practice', FREI: 'free', VERGEBEN: 'taken' },
    cred: { missing: 'none', valid: 'valid', 'not-yet-valid': 'not yet valid', expired: 'expired', 'untrusted-issuer': 'issuer not trusted', revoked: 'revoked' },
    e: {
      VERHALTENSTHERAPIE: 'Behavioural therapy', TIEFENPSYCHOLOGISCH_FUNDIERT: 'Psychodynamic', ANALYTISCH: 'Analytic', SYSTEMISCH: 'Systemic',
      GKV: 'Statutory (GKV)', PKV: 'Private (PKV)', BEIHILFE: 'Beihilfe', SELBSTZAHLER: 'Self-pay', KOSTENERSTATTUNG: 'Reimbursement',
      SPRECHSTUNDE: 'Consultation', AKUTBEHANDLUNG: 'Acute treatment', PROBATORIK: 'Trial sessions', THERAPIEPLATZ_KZT: 'Therapy place (short)', THERAPIEPLATZ_LZT: 'Therapy place (long)',
      GRUPPE_GRUNDVERSORGUNG: 'Group (basic care)', GRUPPENTHERAPIE: 'Group therapy', ERWACHSENE: 'Adults', KINDER_JUGENDLICHE: 'Children and adolescents',
      EINZEL: 'Individual', GRUPPE: 'Group', MEHRPERSONEN: 'Several persons', PRAXIS: 'at the practice', VIDEO: 'by video', WEIBLICH: 'female', MAENNLICH: 'male', DIVERS: 'diverse',
      MORGENS: 'mornings (7–12)', MITTAGS: 'afternoons (12–17)', ABENDS: 'evenings (17–21)', 50: '50 minutes', 25: '25 minutes', 100: '100 minutes',
    },
  },
};

let lang = 'de';
let csrf = '';
let lastQuery = null;
const $ = id => document.getElementById(id);
const t = k => T[lang][k];
const label = v => T[lang].e[v] || v;

// el builds an element; text is set with textContent, never parsed.
function el(tag, opts, ...kids) {
  const n = document.createElement(tag);
  if (opts) {
    if (opts.cls) n.className = opts.cls;
    if (opts.text !== undefined) n.textContent = String(opts.text);
    for (const [k, v] of Object.entries(opts.attrs || {})) n.setAttribute(k, v);
  }
  for (const k of kids) if (k) n.append(k);
  return n;
}

function status(msg, isError) {
  const s = $('status');
  s.textContent = msg || '';
  s.classList.toggle('error', !!isError);
}

function fmtTime(iso) {
  return new Intl.DateTimeFormat(lang === 'de' ? 'de-DE' : 'en-GB', {
    timeZone: 'Europe/Berlin', weekday: 'short', day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit',
  }).format(new Date(iso));
}

// berlinOffset is Europe/Berlin's offset from UTC in ms at instant ms.
function berlinOffset(ms) {
  const p = new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Berlin', hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' }).formatToParts(new Date(ms));
  const g = k => Number(p.find(x => x.type === k).value);
  return Date.UTC(g('year'), g('month') - 1, g('day'), g('hour'), g('minute')) - ms;
}

// berlinToISO turns a datetime-local value, read as Berlin wall time, into RFC 3339.
function berlinToISO(s) {
  const [d, tm] = s.split('T');
  const [y, m, dd] = d.split('-').map(Number);
  const [h, mi] = tm.split(':').map(Number);
  const wall = Date.UTC(y, m - 1, dd, h, mi);
  let ms = wall - berlinOffset(wall);
  ms = wall - berlinOffset(ms);
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// isoToBerlin is berlinToISO's inverse: RFC 3339 to a datetime-local value in Berlin wall time.
function isoToBerlin(iso) {
  const p = new Intl.DateTimeFormat('en-US', { timeZone: 'Europe/Berlin', hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' }).formatToParts(new Date(iso));
  const g = k => p.find(x => x.type === k).value;
  return `${g('year')}-${g('month')}-${g('day')}T${g('hour')}:${g('minute')}`;
}

async function rpc(method, params) {
  let res;
  try {
    res = await fetch('/app/rpc', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Meshd-Csrf': csrf },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: params || {} }),
    });
  } catch (e) {
    throw new Error(t('offline'));
  }
  if (res.status === 401) { showLogin(); throw new Error(t('loginTitle')); }
  if (!res.ok) throw new Error(await res.text());
  const body = await res.json();
  if (body.error) throw new Error(body.error.message);
  return body.result;
}

function fillSelect(sel, values, withAny) {
  const cur = sel.value;
  sel.textContent = '';
  if (withAny) sel.append(el('option', { text: t('any'), attrs: { value: '' } }));
  for (const v of values) sel.append(el('option', { text: label(v), attrs: { value: v } }));
  sel.value = cur;
  if (sel.selectedIndex < 0) sel.selectedIndex = 0;
}

function fillChecks(box, values) {
  const checked = new Set([...box.querySelectorAll('input:checked')].map(i => i.value));
  box.textContent = '';
  for (const v of values) {
    const id = box.id + '-' + v;
    const i = el('input', { attrs: { type: 'checkbox', id, value: v } });
    i.checked = checked.has(v);
    box.append(el('label', { cls: 'check', attrs: { for: id } }, i, ' ' + label(v)));
  }
}

function applyLang() {
  document.documentElement.lang = lang;
  for (const n of document.querySelectorAll('[data-t]')) n.textContent = t(n.dataset.t);
  for (const n of document.querySelectorAll('[data-ta]')) n.setAttribute('aria-label', t(n.dataset.ta));
  const b = $('lang');
  b.textContent = lang === 'de' ? 'English' : 'Deutsch';
  b.lang = lang === 'de' ? 'en' : 'de';
  for (const k of ['verfahren', 'kostentraeger', 'terminart', 'altersgruppe', 'setting', 'modalitaet', 'geschlecht', 'tageszeit']) fillSelect($('q-' + k), ENUMS[k], true);
  fillSelect($('s-terminart'), ENUMS.terminart);
  fillSelect($('s-verfahren'), ENUMS.verfahren);
  fillSelect($('s-dauer'), ENUMS.dauer);
  fillSelect($('s-modalitaet'), ENUMS.modalitaet);
  fillSelect($('s-setting'), ENUMS.setting, true);
  fillSelect($('p-geschlecht'), ENUMS.geschlecht, true);
  fillChecks($('p-verfahren'), ENUMS.verfahren);
  fillChecks($('p-kostentraeger'), ENUMS.kostentraeger);
  fillChecks($('p-altersgruppen'), ENUMS.altersgruppe);
}

const VIEWS = { patient: 'view-patient', mine: 'view-mine', therapist: 'view-therapist' };
function show(view) {
  for (const [k, id] of Object.entries(VIEWS)) {
    $(id).hidden = k !== view;
    $('tab-' + k).setAttribute('aria-pressed', String(k === view));
  }
  $('view-login').hidden = true;
  status('');
  if (view === 'mine') refreshMine();
  if (view === 'therapist') refreshTherapist();
}

function showLogin() {
  for (const id of Object.values(VIEWS)) $(id).hidden = true;
  $('view-login').hidden = false;
}

function busy(container, text) {
  container.textContent = '';
  container.setAttribute('aria-busy', 'true');
  container.append(el('p', { cls: 'loading' }, $('spinner').content.cloneNode(true), ' ' + text));
}
function done(container) { container.removeAttribute('aria-busy'); container.textContent = ''; }

// ---- patient ----

function readQuery() {
  const q = { plz_prefix: $('q-plz').value.trim() };
  for (const k of ['verfahren', 'kostentraeger', 'terminart', 'altersgruppe', 'setting', 'modalitaet', 'geschlecht']) {
    const v = $('q-' + k).value;
    if (v) q[k] = [v];
  }
  const s = $('q-sprache').value.trim().toLowerCase();
  if (s) q.sprachen = [s];
  if ($('q-barrierefrei').checked) q.barrierefrei_zugang = true;
  const w = $('q-tageszeit').value;
  if (w) q.zeitfenster = [WINDOWS[w]];
  return q;
}

async function search(q, quiet) {
  const box = $('results');
  if (!quiet) busy(box, t('searching'));
  try {
    const r = await rpc('fapp.query', q);
    done(box);
    renderResults(box, q, r);
  } catch (e) {
    done(box);
    box.append(el('p', { cls: 'error', text: t('error') + e.message }));
  }
}

function renderResults(box, q, r) {
  if (!r.matches.length) {
    box.append(el('p', { cls: 'empty', text: t('none')(q.plz_prefix) }));
  } else {
    box.append(el('p', { text: t('found')(r.matches.length) }));
  }
  if (!r.complete) box.append(el('p', { cls: 'note', text: t('incomplete') }));
  const list = el('ul', { cls: 'cards' });
  for (const m of r.matches) list.append(matchCard(m));
  box.append(list);
}

function matchCard(m) {
  const s = m.slot;
  const li = el('li', { cls: 'card match', attrs: { 'data-ref': m.ref } });
  li.append(el('h3', { cls: 'name', text: m.name || m.therapist.slice(0, 12) }));
  li.append(el('p', { cls: m.zertifiziert ? 'badge ok' : 'badge', text: m.zertifiziert ? t('certified') : t('uncertified') }));
  li.append(el('p', { cls: 'when', text: `${fmtTime(s.start)} · ${s.dauer} ${t('min')}${s.woechentlich ? ' · ' + t('weekly') : ''}` }));
  li.append(el('p', { text: [label(s.terminart), label(s.verfahren), label(s.modalitaet || 'PRAXIS')].join(' · ') }));
  li.append(el('p', { text: 'PLZ ' + m.plz + ' · ' + m.kostentraeger.map(label).join(', ') }));
  if (m.sprachen && m.sprachen.length) li.append(el('p', { cls: 'langs', text: t('languages') + ': ' + m.sprachen.join(', ') }));
  if (m.schwerpunkte && m.schwerpunkte.length) li.append(el('p', { cls: 'focus', text: t('focus') + ': ' + m.schwerpunkte.join(', ') }));
  if (m.barrierefrei_zugang) li.append(el('p', { text: t('barrierefrei') }));
  const btn = el('button', { cls: 'primary reserve', text: t('reserve'), attrs: { type: 'button' } });
  btn.addEventListener('click', () => { btn.hidden = true; li.append(reserveForm(m)); li.querySelector('input').focus(); });
  li.append(btn);
  return li;
}

let formSeq = 0;
function reserveForm(m) {
  const n = ++formSeq;
  const f = el('form', { cls: 'reserve-form' });
  const kontakt = el('input', { attrs: { id: 'k' + n, name: 'kontakt', maxlength: '200', autocomplete: 'email', 'aria-describedby': 'kh' + n } });
  f.append(el('label', { attrs: { for: 'k' + n } }, t('kontakt')), kontakt, el('small', { text: t('kontaktHelp'), attrs: { id: 'kh' + n } }));
  let ptv;
  if (m.slot.terminart === 'AKUTBEHANDLUNG' || m.slot.voraussetzung === 'PTV11') {
    ptv = el('textarea', { attrs: { id: 'p' + n, maxlength: '900', rows: '2' } });
    f.append(el('label', { attrs: { for: 'p' + n } }, t('ptv11')), ptv);
  }
  f.append(el('button', { cls: 'primary', text: t('send'), attrs: { type: 'submit' } }));
  f.addEventListener('submit', async ev => {
    ev.preventDefault();
    f.querySelector('button').disabled = true;
    try {
      const p = { slot: m.ref, kontakt: kontakt.value.trim() };
      if (ptv && ptv.value.trim()) p.ptv11 = ptv.value.trim();
      await rpc('fapp.reserve', p);
      show('mine');
      status(t('reserved'));
    } catch (e) {
      f.querySelector('button').disabled = false;
      status(t('error') + e.message, true);
    }
  });
  return f;
}

async function refreshMine() {
  const box = $('mine');
  if (!box.childElementCount) busy(box, t('loading'));
  try {
    const rs = await rpc('fapp.reservations', { role: 'patient' });
    done(box);
    if (!rs.length) { box.append(el('p', { cls: 'empty', text: t('noMine') })); return; }
    const list = el('ul', { cls: 'cards' });
    for (const r of rs) list.append(reservationCard(r, false));
    box.append(list);
  } catch (e) {
    done(box);
    box.append(el('p', { cls: 'error', text: t('error') + e.message }));
  }
}

const OPEN = ['ANGEFRAGT', 'GEHALTEN', 'BESTAETIGT'];
function reservationCard(r, therapist) {
  const li = el('li', { cls: 'card reservation', attrs: { 'data-id': r.id, 'data-state': r.state } });
  const d = r.details;
  li.append(el('h3', { cls: 'name', text: therapist ? (d ? label(d.terminart) : r.slot) : (r.therapist_name || r.slot.slice(0, 12)) }));
  li.append(el('p', { cls: 'state state-' + r.state, text: t('st')[r.state] || r.state }));
  const start = r.start || (d && d.start);
  if (start) li.append(el('p', { cls: 'when', text: t('start') + ': ' + fmtTime(start) + (d ? ` · ${d.dauer} ${t('min')}` : '') }));
  if (d && !therapist) li.append(el('p', { text: [label(d.terminart), label(d.verfahren)].join(' · ') }));
  if (therapist && r.kontakt) li.append(el('p', { cls: 'kontakt', text: t('contact') + ': ' + r.kontakt }));
  if (therapist && r.ptv11) li.append(el('p', { text: 'PTV 11: ' + r.ptv11 }));
  if (r.nachricht) li.append(el('p', { cls: 'msg', text: t('message') + ': ' + r.nachricht }));
  if (therapist && (r.state === 'ANGEFRAGT' || r.state === 'GEHALTEN')) li.append(answerForm(r));
  if (!therapist && OPEN.includes(r.state)) {
    const b = el('button', { cls: 'secondary cancel', text: t('cancel'), attrs: { type: 'button' } });
    b.addEventListener('click', async () => {
      b.disabled = true;
      try { await rpc('fapp.cancel', { id: r.id }); status(t('cancelled')); refreshMine(); } catch (e) { b.disabled = false; status(t('error') + e.message, true); }
    });
    li.append(b);
  }
  return li;
}

// ---- therapist ----

function answerForm(r) {
  const id = 'a' + r.id;
  const msg = el('input', { attrs: { id, maxlength: '400' } });
  const f = el('div', { cls: 'answer' }, el('label', { attrs: { for: id } }, t('answer')), msg);
  for (const [action, cls] of [['confirm', 'primary confirm'], ['decline', 'secondary decline']]) {
    const b = el('button', { cls, text: t(action), attrs: { type: 'button' } });
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const p = { id: r.id, action };
        if (msg.value.trim()) p.nachricht = msg.value.trim();
        await rpc('fapp.respond', p);
        refreshTherapist();
      } catch (e) { b.disabled = false; status(t('error') + e.message, true); }
    });
    f.append(b);
  }
  return f;
}

const splitList = s => s.split(',').map(x => x.trim()).filter(Boolean);
const checked = box => [...$(box).querySelectorAll('input:checked')].map(i => i.value);

async function refreshTherapist() {
  try {
    const [prof, cred, offer, inc] = await Promise.all([
      rpc('fapp.profile'), rpc('fapp.credential.status'), rpc('fapp.slots'), rpc('fapp.reservations', { role: 'therapist' }),
    ]);
    renderProfile(prof);
    renderCred(cred);
    renderSlots(offer);
    const box = $('incoming');
    box.textContent = '';
    if (!inc.length) box.append(el('p', { cls: 'empty', text: t('noIncoming') }));
    const list = el('ul', { cls: 'cards' });
    for (const r of inc) list.append(reservationCard(r, true));
    box.append(list);
  } catch (e) {
    status(t('error') + e.message, true);
  }
}

let profileLoaded = false;
function renderProfile(info) {
  const p = info.profile;
  if (!p || profileLoaded) return;
  profileLoaded = true;
  $('p-name').value = p.name;
  $('p-plz').value = p.plz;
  $('p-sprachen').value = (p.sprachen || []).join(', ');
  $('p-schwerpunkte').value = (p.schwerpunkte || []).join(', ');
  $('p-geschlecht').value = p.geschlecht || '';
  $('p-bf').checked = !!p.barrierefrei_zugang;
  for (const [box, vals] of [['p-verfahren', p.verfahren], ['p-kostentraeger', p.kostentraeger], ['p-altersgruppen', p.altersgruppen]]) {
    for (const i of $(box).querySelectorAll('input')) i.checked = vals.includes(i.value);
  }
}

function renderCred(c) {
  const box = $('cred');
  box.textContent = '';
  box.append(el('h3', { text: t('credTitle') }));
  box.append(el('p', { cls: 'cred-status', text: `${t('credStatus')}: ${t('cred')[c.status] || c.status}` + (c.valid_to ? ` · ${t('validTo')} ${fmtTime(c.valid_to)}` : '') + (c.issuer ? ` · ${t('issuer')} ${c.issuer}` : '') }));
  if (c.status !== 'valid') {
    box.append(el('p', { text: t('identity') + ':' }), el('code', { cls: 'identity', text: c.identity }));
    const ta = el('textarea', { attrs: { id: 'cred-text', rows: '2' } });
    const b = el('button', { cls: 'secondary', text: t('credBtn'), attrs: { type: 'button' } });
    b.addEventListener('click', async () => {
      try { renderCred(await rpc('fapp.credential.import', { credential: ta.value.trim() })); } catch (e) { status(t('error') + e.message, true); }
    });
    box.append(el('label', { attrs: { for: 'cred-text' } }, t('credImport')), ta, b);
  }
}

function renderSlots(offer) {
  const box = $('slots');
  box.textContent = '';
  if (!offer.slots.length) box.append(el('p', { cls: 'empty', text: t('noSlots') }));
  const list = el('ul', { cls: 'cards' });
  for (const s of offer.slots) {
    const li = el('li', { cls: 'card slot', attrs: { 'data-status': s.status || 'FREI' } });
    li.append(el('p', { cls: 'when', attrs: { id: 'slot-when-' + s.id }, text: `${fmtTime(s.start)} · ${s.dauer} ${t('min')}${s.woechentlich ? ' · ' + t('weekly') : ''}` }));
    li.append(el('p', { text: `${label(s.terminart)} · ${label(s.verfahren)} · ${t('st')[s.status] || s.status}` }));
    const e = el('button', { cls: 'secondary edit', text: t('edit'), attrs: { type: 'button', 'aria-describedby': 'slot-when-' + s.id } });
    e.addEventListener('click', () => editSlot(s));
    const b = el('button', { cls: 'secondary', text: t('withdraw'), attrs: { type: 'button', 'aria-describedby': 'slot-when-' + s.id } });
    b.addEventListener('click', async () => {
      try { renderSlots(await rpc('fapp.withdraw', { slots: [s.id] })); } catch (e) { status(t('error') + e.message, true); }
    });
    li.append(e, ' ', b);
    list.append(li);
  }
  box.append(list);
  if (offer.pending && offer.next_announce) box.append(el('p', { cls: 'note', text: t('pending')(fmtTime(offer.next_announce)) }));
}

async function saveProfile(ev) {
  ev.preventDefault();
  const set = {
    name: $('p-name').value.trim(), plz: $('p-plz').value.trim(),
    verfahren: checked('p-verfahren'), kostentraeger: checked('p-kostentraeger'), altersgruppen: checked('p-altersgruppen'),
    sprachen: splitList($('p-sprachen').value.toLowerCase()), schwerpunkte: splitList($('p-schwerpunkte').value),
    barrierefrei_zugang: $('p-bf').checked,
  };
  if ($('p-geschlecht').value) set.geschlecht = $('p-geschlecht').value;
  try { await rpc('fapp.profile', { set }); status(t('saved')); } catch (e) { status(t('error') + e.message, true); }
}

// editing is the own slot the form edits, or null when it adds a new one.
let editing = null;

// editSlot loads an own slot into the form. fapp.publish with the slot's
// ID replaces that slot (the ID, and so the patients' references, stay);
// a held or taken slot is refused because a patient asked for it as it is.
function editSlot(s) {
  if ((s.status || 'FREI') !== 'FREI') { status(t('notEditable'), true); return; }
  editing = s;
  for (const k of ['terminart', 'verfahren', 'dauer', 'modalitaet']) $('s-' + k).value = String(s[k] || '');
  $('s-setting').value = s.setting || '';
  $('s-start').value = isoToBerlin(s.start);
  $('s-weekly').checked = !!s.woechentlich;
  $('s-bis').value = s.bis ? isoToBerlin(s.bis).split('T')[0] : '';
  setSlotMode(t('editing')(fmtTime(s.start)));
  $('s-start').focus();
}

// setSlotMode switches the slot form between adding and editing.
function setSlotMode(msg) {
  const b = $('s-submit');
  b.dataset.t = editing ? 'sSave' : 'sPublish';
  b.textContent = t(b.dataset.t);
  $('s-cancel').hidden = !editing;
  status(msg || '');
}

async function publishSlot(ev) {
  ev.preventDefault();
  if (!$('s-start').value) { status(t('error') + t('sStart'), true); $('s-start').focus(); return; }
  const s = {
    ...(editing || {}), status: undefined,
    terminart: $('s-terminart').value, verfahren: $('s-verfahren').value, start: berlinToISO($('s-start').value),
    dauer: Number($('s-dauer').value), modalitaet: $('s-modalitaet').value,
  };
  s.setting = $('s-setting').value || undefined;
  s.woechentlich = $('s-weekly').checked || undefined;
  s.bis = $('s-weekly').checked && $('s-bis').value ? berlinToISO($('s-bis').value + 'T' + $('s-start').value.split('T')[1]) : undefined;
  const msg = editing ? t('changed') : t('published');
  try {
    const offer = await rpc('fapp.publish', { slots: [s] });
    editing = null;
    setSlotMode(msg);
    renderSlots(offer);
  } catch (e) { status(t('error') + e.message, true); }
}

// ---- events ----

function connectEvents() {
  const ws = new WebSocket(`ws://${location.host}/app/ws`, ['meshd.v1', 'meshd.csrf.' + csrf]);
  ws.addEventListener('open', () => ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'msg.subscribe' })));
  ws.addEventListener('message', ev => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    if (m.method !== 'msg.event' || !m.params) return;
    if (m.params.kind === 'fapp-reservation') {
      if (!$('view-mine').hidden) refreshMine();
      if (!$('view-therapist').hidden) refreshTherapist();
    } else if (m.params.kind === 'fapp-index' && lastQuery && !$('view-patient').hidden) {
      search(lastQuery, true);
    }
  });
  ws.addEventListener('close', () => setTimeout(connectEvents, 3000));
}

async function start() {
  applyLang();
  $('lang').addEventListener('click', () => {
    lang = lang === 'de' ? 'en' : 'de';
    try { localStorage.setItem('fapp-lang', lang); } catch { /* private mode */ }
    applyLang();
  });
  for (const v of Object.keys(VIEWS)) $('tab-' + v).addEventListener('click', () => show(v));
  $('search').addEventListener('submit', ev => {
    ev.preventDefault();
    const plz = $('q-plz');
    if (!/^[0-9]{1,5}$/.test(plz.value.trim())) {
      plz.setAttribute('aria-invalid', 'true');
      status(t('error') + t('plzHelp'), true);
      plz.focus();
      return;
    }
    plz.removeAttribute('aria-invalid');
    lastQuery = readQuery();
    search(lastQuery, false);
  });
  $('profile').addEventListener('submit', saveProfile);
  $('slot').addEventListener('submit', publishSlot);
  $('s-cancel').addEventListener('click', () => { editing = null; $('slot').reset(); setSlotMode(''); });
  try {
    const saved = localStorage.getItem('fapp-lang');
    if (saved === 'en' || saved === 'de') { lang = saved; applyLang(); }
  } catch { /* private mode */ }
  const res = await fetch('/app/session', { method: 'POST', credentials: 'same-origin' });
  if (!res.ok) { showLogin(); return; }
  csrf = (await res.json()).csrf;
  show('patient');
  connectEvents();
  document.body.dataset.ready = 'true';
  performance.mark('fapp-ready');
}

start();
