// jamnet works in the browser: a take's split and consents, registered works, a player that
// counts a play after 30 s of actual playback (a signed listen receipt), earnings per work
// and per period, and withdrawals (to yourself or another address). Everything is signed
// here, with this page's key or the injected wallet.
import { $, api, showError, state } from "./app.js";
import { unit as wei } from "./gov.js";

const works = { info: null, list: [], periods: [], draft: null, play: null, playedMs: 0,
                lastPos: null, counted: [], busy: false, lookedUp: [] };
window.jamnetWorks = works;   // for end-to-end tests (read-only use)

const WITHDRAW_ABI = [
  "function withdrawTo(uint256 workId, address to)",
  "function withdrawTokenTo(uint256 workId, address to)",
  "function pay(uint256 workId) payable",
];
const LICENSING_ABI = [
  "function offer(uint256 workId, uint8 usage, uint32 termDays, bytes2 territory, uint256 price) returns (uint256)",
  "function buy(uint256 termsId, address licensee) payable returns (uint256)",
  "function verify(uint256 licenceId) view returns ((uint256 workId, address licensee, uint8 usage, bytes2 territory, bool exclusive, uint64 start, uint64 end, uint256 price, uint256 source), bool)",
  "event LicenceIssued(uint256 indexed licenceId, uint256 indexed workId, address indexed licensee, bool exclusive, uint256 source, uint256 price, uint64 end)",
  "function createAuction(uint256 workId, uint8 usage, uint32 termDays, bytes2 territory, uint256 reserve, uint64 commitEnd, uint64 revealEnd) returns (uint256)",
  "function commit(uint256 auctionId, bytes32 commitment) payable",
  "function reveal(uint256 auctionId, uint256 value, bytes32 salt)",
  "function settle(uint256 auctionId) returns (uint256)",
  "function withdrawRefunds(address to)",
  "function refundOf(address account) view returns (uint256)",
  "function bidOf(uint256 auctionId, address bidder) view returns ((bytes32 commitment, uint256 deposit, uint32 seq, bool revealed))",
];
const USAGES = ["online-video", "advert", "film", "game", "broadcast", "other"];
const typesOf = (typed) => Object.fromEntries(
  Object.entries(typed.types).filter(([name]) => name !== "EIP712Domain"));

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  Object.assign(node, attrs || {});
  return node;
}

// ------------------------------------------------------------ take → work
async function showTake(recordingId) {
  try {
    works.draft = await api("GET", `/api/recordings/${encodeURIComponent(recordingId)}/work`);
    renderDraft();
  } catch (e) { showError(e); }
}

function renderDraft() {
  const d = works.draft;
  const box = $("#take-draft");
  box.replaceChildren();
  if (!d) return;
  box.append(el("h3", `Take ${d.recording_id}`));
  const shown = d.state === "registered" ? `registered as work ${d.work_id}` : d.state;
  box.append(el("p", `state: ${shown}` + (d.error ? ` (${d.error})` : ""), { className: "draft-state" }));
  const owner = isOwner();
  const table = el("table", null, { className: "split" });
  table.append(el("tr", null, { innerHTML: "<th>contributor</th><th>share %</th><th>consent</th>" }));
  for (const entry of d.split) {
    const row = el("tr");
    row.dataset.address = entry.address;
    row.append(el("td", entry.address + (entry.address === state.address ? " (you)" : "")));
    const share = el("td");
    if (owner && d.state === "consenting") {
      share.append(el("input", null, { type: "number", min: "0.01", max: "100", step: "0.01",
        value: String(entry.bps / 100), className: "share", ariaLabel: `share of ${entry.address} in %` }));
    } else {
      share.textContent = (entry.bps / 100).toFixed(2);
    }
    row.append(share, el("td", entry.consented ? "given" : "waiting"));
    table.append(row);
  }
  box.append(table);
  if (owner && d.state === "consenting") {
    box.append(el("button", "Save split", { id: "save-split", type: "button", onclick: saveSplit }));
  }
  const mine = d.split.find((e) => e.address === state.address);
  if (mine && !mine.consented && d.state === "consenting") {
    box.append(el("button", `Consent to ${(mine.bps / 100).toFixed(2)} %`,
      { id: "consent", type: "button", onclick: consent }));
  }
  box.append(el("p", "The proposed split is each contributor's share of the take's level; " +
    "the owner may change it; every contributor signs; the node registers the work.", { className: "hint" }));
}

function isOwner() {
  return !!(state.session && state.session.owner === state.address);
}

async function saveSplit() {
  const d = works.draft;
  const rows = [...document.querySelectorAll("#take-draft tr[data-address]")];
  const split = rows.map((r) => ({ address: r.dataset.address,
    bps: Math.round(parseFloat(r.querySelector("input.share").value) * 100) }))
    .filter((e) => e.bps > 0);
  const total = split.reduce((sum, e) => sum + e.bps, 0);
  if (total !== 10000) { showError(`shares add up to ${total / 100} %, not 100 %`); return; }
  const signedAt = Math.floor(Date.now() / 1000);
  const text = `jamnet split\nrecording: ${d.recording_id}\nsplit: ` +
    split.map((e) => `${e.address}:${e.bps}`).join(",") + `\nsigned: ${signedAt}`;
  try {
    const signature = await state.wallet.signMessage(text);
    works.draft = await api("PUT", `/api/recordings/${d.recording_id}/work/split`,
      { split, signed_at: signedAt, signature });
    showError("");
    renderDraft();
  } catch (e) { showError(e); }
}

async function consent() {
  const d = works.draft;
  const typed = d.typed_data;
  try {
    const signature = await state.wallet.signTypedData(typed.domain, typesOf(typed), typed.message);
    works.draft = await api("POST", `/api/recordings/${d.recording_id}/work/consents`,
      { address: state.address, signature });
    showError("");
    renderDraft();
    await refreshWorks();
  } catch (e) { showError(e); }
}

async function renderTakes() {
  const list = $("#takes");
  list.replaceChildren();
  if (!state.session) { list.append(el("li", "join a session to see its takes", { className: "empty" })); return; }
  const rows = (await api("GET", `/api/sessions/${state.session.id}/recordings`)).recordings;
  if (!rows.length) list.append(el("li", "no takes yet", { className: "empty" }));
  for (const r of rows) {
    const li = el("li");
    li.dataset.id = r.id;
    const seconds = (r.frames * r.frame_samples / 48000).toFixed(1);
    const when = new Date(r.started_at * 1000).toLocaleString();
    li.append(el("span", `${when} · ${seconds} s · ${r.state} `));
    if (r.sealed) li.append(el("button", "Work…", { type: "button", className: "open-take", onclick: () => showTake(r.id) }));
    const files = el("div", null, { className: "files" });
    const link = (name, label) => el("a", label, {
      href: `/api/recordings/${encodeURIComponent(r.id)}/files/${name}?token=${encodeURIComponent(state.token)}`,
      download: `${r.id}-${name}`, className: name === "mix.wav" ? "mix" : "stem" });
    files.append(el("button", "▶ mix", { type: "button", className: "play-take",
      ariaLabel: `play the mix of take ${r.id}`,
      onclick: () => { works.play = null; const p = $("#player"); p.src = link("mix.wav", "").href; p.play().catch(showError); } }));
    files.append(" ", link("mix.wav", "mix"));
    for (const c of r.contributions) {
      files.append(" · ", link(c.stem, `${c.name} (${c.active_s.toFixed(1)} s active)`));
    }
    li.append(files);
    list.append(li);
  }
}

// ------------------------------------------------------------------ works
async function refreshWorks() {
  if (!works.info) return;
  works.list = (await api("GET", "/api/works")).works;
  const royalty = await api("GET", "/api/royalties");
  works.periods = royalty.periods;
  $("#pool").textContent = `pool: ${wei(royalty.pool.unallocated_eth)} ETH and ` +
    `${wei(royalty.pool.unallocated_jam)} JAM to share; open period ${royalty.current}`;
  const list = document.createDocumentFragment();   // built off the page, swapped in at once
  const registered = works.list.filter((w) => w.work_id !== null);
  const ours = new Set(registered.map((w) => w.work_id));
  for (const id of works.lookedUp.filter((x) => !ours.has(x))) {   // works from elsewhere on the chain
    const detail = await api("GET", `/api/chain/works/${id}`);
    registered.push({ work_id: id, plays: null, elsewhere: true,
      split: detail.contributors.map((x) => ({ address: x.address, bps: x.share_bps })) });
  }
  if (!registered.length) list.append(el("li", "no registered works on this node yet", { className: "empty" }));
  for (const w of registered) {
    const li = el("li");
    li.dataset.work = String(w.work_id);
    li.append(el("strong", `work ${w.work_id}`));
    if (w.elsewhere) {
      li.append(el("span", " · registered elsewhere · "));
    } else {
      li.append(el("span", ` · ${w.plays} plays · `));
      li.append(el("button", "Play", { type: "button", className: "play", onclick: () => play(w) }));
    }
    const amount = el("input", null, { type: "number", min: "0", step: "0.001", value: "0.01",
      className: "pay-amount", ariaLabel: `ETH to pay work ${w.work_id}` });
    li.append(amount, el("button", "Pay ETH", { type: "button", className: "pay",
      onclick: () => pay(w.work_id, amount.value) }));
    const mine = w.split.find((e) => e.address === state.address);
    const detail = await api("GET", `/api/chain/works/${w.work_id}`);
    li.append(familyOf(detail), licencesOf(detail));
    if (mine) {
      const me = detail.contributors.find((c) => c.address === state.address);
      const earned = el("div", null, { className: "earnings" });
      earned.append(el("span", `your share ${(mine.bps / 100).toFixed(2)} %: ` +
        `${wei(me.owed_eth)} ETH and ${wei(me.owed_jam)} JAM to withdraw`));
      for (const p of works.periods) {
        const payout = ((p.rollup || {}).payouts || []).find((x) => x.work_id === w.work_id);
        if (payout) {
          earned.append(el("span", ` · period ${p.id} (${p.state}): ` +
            `${wei(BigInt(payout.eth) * BigInt(mine.bps) / 10000n)} ETH`, { className: "period" }));
        }
      }
      if (BigInt(me.owed_eth) > 0n || BigInt(me.owed_jam) > 0n) {
        const to = el("input", null, { placeholder: "to (default: you)", className: "withdraw-to", size: 20 });
        earned.append(to, el("button", "Withdraw", { type: "button", className: "withdraw",
          onclick: () => withdraw(w.work_id, to.value.trim(), me) }));
      }
      li.append(earned);
    }
    list.append(li);
  }
  // The swap keeps what you typed (and where you are typing): nothing awaits in between.
  const shown = $("#work-list");
  const typed = new Map([...shown.querySelectorAll("input, select")].map((i) => [
    `${i.closest("li").dataset.work}:${i.className}`, { value: i.value, focused: i === document.activeElement }]));
  shown.replaceChildren(list);
  for (const input of shown.querySelectorAll("input, select")) {
    const kept = typed.get(`${input.closest("li").dataset.work}:${input.className}`);
    if (kept) { input.value = kept.value; if (kept.focused) input.focus(); }
  }
  await showRefunds().catch(() => {});
}

// The family: what this work derives from (and sent up), what derives from it (and paid it).
function familyOf(detail) {
  const f = detail.family;
  const box = el("div", null, { className: "family" });
  if (f.ancestors.length) {
    box.append(el("span", `derived from work ${f.parents.join(" and ")}; ` + f.ancestors.map((a) =>
      `work ${a.work} takes ${(a.bps / 100).toFixed(2)} % (sent ${wei(a.sent_eth)} ETH)`).join(", ")));
  } else {
    box.append(el("span", "an original work"));
  }
  if (f.derivative_bps) box.append(el("span", ` · takes ${(f.derivative_bps / 100).toFixed(2)} % of its derivatives`));
  for (const r of f.received_from) {
    box.append(el("span", ` · received ${wei(r.eth)} ETH from work ${r.work}`, { className: "from" }));
  }
  return box;
}

// Licence terms on offer (buy one for yourself), and, for the lead contributor, a form to offer.
function licencesOf(detail) {
  const box = el("div", null, { className: "licences" });
  const now = Date.now() / 1000;
  for (const t of detail.licence_terms.filter((x) => x.active)) {
    const row = el("span", `${t.usage} licence, ${t.days} days, ${t.territory}: ${wei(t.price_wei)} ETH `,
      { className: "terms" });
    row.dataset.terms = String(t.terms);
    const blocked = t.blocked_until > now;
    row.append(el("button", blocked ? "held exclusively" : "Buy licence", { type: "button",
      className: "buy-licence", disabled: blocked, onclick: () => buyLicence(t) }));
    box.append(row);
  }
  if (detail.lead === state.address) {
    const usage = el("select", null, { className: "offer-usage", ariaLabel: "usage" });
    for (const u of USAGES) usage.append(el("option", u, { value: u }));
    const days = el("input", null, { type: "number", min: "1", max: "3650", value: "365",
      className: "offer-days", ariaLabel: "term in days", size: 5 });
    const territory = el("input", null, { value: "WW", maxLength: 2, size: 3,
      className: "offer-territory", ariaLabel: "territory (ISO code or WW)" });
    const price = el("input", null, { type: "number", min: "0", step: "0.001", value: "0.1",
      className: "offer-price", ariaLabel: "price in ETH" });
    box.append(el("span", "offer a licence: "), usage, days, territory, price,
      el("button", "Offer", { type: "button", className: "offer-licence",
        onclick: () => offerLicence(detail.id, usage.value, days.value, territory.value, price.value) }));
  }
  for (const a of detail.auctions) box.append(auctionRow(detail, a));
  if (detail.lead === state.address) {
    const usage = el("select", null, { className: "auction-usage", ariaLabel: "usage to auction" });
    for (const u of USAGES) usage.append(el("option", u, { value: u }));
    const reserve = el("input", null, { type: "number", min: "0", step: "0.001", value: "0.1",
      className: "auction-reserve", ariaLabel: "reserve in ETH" });
    const hours = el("input", null, { type: "number", min: "1", max: "720", value: "24",
      className: "auction-hours", ariaLabel: "hours for bids, then as many for reveals", size: 4 });
    box.append(el("span", "auction an exclusive licence: "), usage, reserve, hours,
      el("button", "Auction", { type: "button", className: "create-auction",
        onclick: () => createAuction(detail.id, usage.value, reserve.value, hours.value) }));
  }
  return box;
}

// One auction: bid while bidding is open (the value and salt are kept in this browser before
// the commitment is sent), reveal in the reveal window, anyone settles after it.
const bidKey = (auction) => `jamnet.bid:${works.info.chain_id}:${works.info.addresses.Licensing}:${auction}:${state.address}`;

function auctionRow(detail, a) {
  const now = detail.chain_time;
  const row = el("span", null, { className: "auction" });
  row.dataset.auction = String(a.auction);
  const head = `auction ${a.auction}: exclusive ${a.usage} licence, ${a.days} days, reserve ${wei(a.reserve_wei)} ETH, ` +
    `${a.bids} bids, ${a.revealed} revealed`;
  const saved = localStorage.getItem(bidKey(a.auction));
  if (a.settled) {
    const won = BigInt(a.leader) === 0n ? "no valid bid" : `won by ${a.leader === state.address ? "you" : a.leader} at ${wei(a.price_wei)} ETH`;
    row.append(el("span", `${head} · settled: ${won} `));
  } else if (now < a.commit_end) {
    row.append(el("span", `${head} · bidding for ${Math.ceil((a.commit_end - now) / 60)} more min `));
    if (!saved) {
      const value = el("input", null, { type: "number", min: "0", step: "0.001", className: "bid-value", ariaLabel: "your bid in ETH" });
      const deposit = el("input", null, { type: "number", min: "0", step: "0.001", className: "bid-deposit",
        ariaLabel: "deposit in ETH (at least the bid; more hides it)" });
      row.append(value, deposit, el("button", "Sealed bid", { type: "button", className: "bid",
        onclick: () => bid(a, value.value, deposit.value) }));
    } else {
      row.append(el("span", "your sealed bid is in (reveal it when bidding closes) "));
    }
  } else if (now < a.reveal_end) {
    row.append(el("span", `${head} · revealing for ${Math.ceil((a.reveal_end - now) / 60)} more min `));
    if (saved && !JSON.parse(saved).revealed) {
      row.append(el("button", "Reveal my bid", { type: "button", className: "reveal", onclick: () => reveal(a) }));
    }
  } else {
    row.append(el("span", `${head} · ended `), el("button", "Settle", { type: "button", className: "settle",
      onclick: () => txThen(() => licensing().settle(a.auction), `auction ${a.auction} settled`) }));
  }
  return row;
}

async function txThen(send, message) {
  if (busy()) return;
  works.busy = true;
  try {
    await (await send()).wait();
    works.busy = false;
    showError("");
    await refreshWorks();   // first: when the status line says so, the list shows it
    $("#works-status").textContent = message;
  } catch (e) { showError(e.shortMessage || e.message || e); }
  finally { works.busy = false; }
}

async function createAuction(workId, usage, reserve, hours) {
  const h = Number(hours);
  if (!Number.isFinite(h) || h < 1 || h > 720) { showError("hours: 1-720"); return; }
  const value = ethers.parseEther(String(reserve || "0"));
  if (value <= 0n) { showError("an auction has a positive reserve"); return; }
  const block = await chainWallet().provider.getBlock("latest");
  const commitEnd = block.timestamp + Math.round(h * 3600);
  await txThen(() => licensing().createAuction(workId, USAGES.indexOf(usage), 365,
    ethers.hexlify(ethers.toUtf8Bytes("WW")), value, commitEnd, commitEnd + Math.round(h * 3600)),
    `auction of an exclusive ${usage} licence of work ${workId} opened`);
}

async function bid(a, amount, deposit) {
  try {
    const value = ethers.parseEther(String(amount || "0"));
    const put = deposit ? ethers.parseEther(String(deposit)) : value;
    if (value < BigInt(a.reserve_wei)) throw new Error(`bid at least the reserve, ${wei(a.reserve_wei)} ETH`);
    if (put < value) throw new Error("the deposit must be at least the bid");
    const salt = ethers.hexlify(ethers.randomBytes(32));
    const sealed = ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(
      ["uint256", "address", "uint256", "bytes32"], [a.auction, state.address, value, salt]));
    localStorage.setItem(bidKey(a.auction), JSON.stringify({ value: value.toString(), salt, revealed: false }));
    await txThen(() => licensing().commit(a.auction, sealed, { value: put }),
      `sealed bid on auction ${a.auction}: kept in this browser until you reveal it`);
  } catch (e) { showError(e.shortMessage || e.message || e); }
}

async function reveal(a) {
  const saved = JSON.parse(localStorage.getItem(bidKey(a.auction)));
  await txThen(() => licensing().reveal(a.auction, BigInt(saved.value), saved.salt),
    `revealed your bid of ${wei(saved.value)} ETH on auction ${a.auction}`);
  const bidNow = await licensing().bidOf(a.auction, state.address);
  if (bidNow.revealed) localStorage.setItem(bidKey(a.auction), JSON.stringify({ ...saved, revealed: true }));
  await refreshWorks();
}

async function showRefunds() {
  if (!works.info.addresses.Licensing) return;
  const owed = await licensing().refundOf(state.address);
  const box = $("#refunds");
  box.replaceChildren();
  if (owed > 0n) {
    box.append(el("span", `auction refunds: ${wei(owed)} ETH `), el("button", "Withdraw refunds", {
      type: "button", className: "withdraw-refunds",
      onclick: () => txThen(() => licensing().withdrawRefunds(state.address), `withdrew ${wei(owed)} ETH of refunds`) }));
  }
}

function licensing() {
  if (!works.info.addresses.Licensing) throw new Error("this chain has no Licensing contract");
  return new ethers.Contract(works.info.addresses.Licensing, LICENSING_ABI, chainWallet());
}

async function offerLicence(workId, usage, days, territory, price) {
  if (busy()) return;
  works.busy = true;
  try {
    const code = String(territory || "").trim().toUpperCase();
    if (!/^[A-Z]{2}$/.test(code)) throw new Error("territory: a two-letter country code, or WW");
    const term = Number(days);
    if (!Number.isInteger(term) || term < 1 || term > 3650) throw new Error("term: 1-3650 days");
    const wei_ = ethers.parseEther(String(price || "0"));
    if (wei_ <= 0n) throw new Error("a licence has a positive price");
    const bytes2 = ethers.hexlify(ethers.toUtf8Bytes(code));
    await (await licensing().offer(workId, USAGES.indexOf(usage), term, bytes2, wei_)).wait();
    works.busy = false;
    $("#works-status").textContent = `offered a ${usage} licence of work ${workId} for ${price} ETH`;
    showError("");
    await refreshWorks();
  } catch (e) { showError(e.shortMessage || e.message || e); }
  finally { works.busy = false; }
}

async function buyLicence(terms) {
  if (busy()) return;
  works.busy = true;
  try {
    const contract = licensing();
    const receipt = await (await contract.buy(terms.terms, state.address, { value: BigInt(terms.price_wei) })).wait();
    const issued = receipt.logs.map((l) => { try { return contract.interface.parseLog(l); } catch { return null; } })
      .find((e) => e && e.name === "LicenceIssued");
    works.busy = false;
    showError("");
    $("#works-status").textContent = `licence ${issued.args.licenceId} issued to you: ` +
      `${terms.usage}, ${terms.days} days (its price went to the work's split)`;
    $("#licence-id").value = String(issued.args.licenceId);
    await refreshWorks();
  } catch (e) { showError(e.shortMessage || e.message || e); }
  finally { works.busy = false; }
}

async function verifyLicence() {
  try {
    const id = $("#licence-id").value.trim();
    if (!/^\d+$/.test(id)) throw new Error("a licence id is a whole number");
    const [record, valid] = await licensing().verify(BigInt(id));
    const end = new Date(Number(record.end) * 1000).toISOString().slice(0, 10);
    const kind = record.exclusive ? "exclusive " : "";
    $("#licence-result").textContent = `licence ${id}: ${kind}${USAGES[Number(record.usage)]} use of work ` +
      `${record.workId} by ${record.licensee} in ${ethers.toUtf8String(record.territory)} until ${end}, ` +
      `${wei(record.price)} ETH — ${valid ? "valid now" : "NOT in force"}`;
    showError("");
  } catch (e) { showError(e.shortMessage || e.message || e); }
}

function chainWallet() {
  return state.wallet.provider ? state.wallet
    : state.wallet.connect(new ethers.JsonRpcProvider(works.info.rpc_url));
}

function busy() {
  if (works.busy) showError("a transaction is already on its way: wait for it to finish");
  return works.busy;
}

async function pay(workId, amount) {
  if (busy()) return;
  works.busy = true;
  try {
    const value = ethers.parseEther(String(amount || "0"));
    if (value <= 0n) throw new Error("pay a positive amount of ETH");
    const registry = new ethers.Contract(works.info.addresses.WorkRegistry, WITHDRAW_ABI, chainWallet());
    await (await registry.pay(workId, { value })).wait();
    works.busy = false;
    $("#works-status").textContent = `paid work ${workId} ${amount} ETH: it goes to the split`;
    showError("");
    await refreshWorks();
  } catch (e) { showError(e.shortMessage || e.message || e); }
  finally { works.busy = false; }
}

async function withdraw(workId, to, owed) {
  if (busy()) return;
  works.busy = true;
  try {
    const target = to || state.address;
    if (!ethers.isAddress(target)) throw new Error(`${target} is not an address`);
    const registry = new ethers.Contract(works.info.addresses.WorkRegistry, WITHDRAW_ABI, chainWallet());
    if (BigInt(owed.owed_eth) > 0n) await (await registry.withdrawTo(workId, target)).wait();
    if (BigInt(owed.owed_jam) > 0n) await (await registry.withdrawTokenTo(workId, target)).wait();
    works.busy = false;
    showError("");
    $("#works-status").textContent = `withdrawn from work ${workId} to ${target}`;
    await refreshWorks();
  } catch (e) { showError(e.shortMessage || e.message || e); }
  finally { works.busy = false; }
}

// ------------------------------------------------------------------ player
async function play(work) {
  try {
    const started = await api("POST", `/api/works/${work.work_id}/plays`, { listener: state.address });
    works.play = started;
    works.playedMs = 0;
    works.lastPos = null;
    const player = $("#player");
    player.src = started.stream;   // the browser streams it with range requests
    await player.play();
    $("#works-status").textContent = `playing work ${work.work_id}: a play counts after 30 s`;
  } catch (e) { showError(e); }
}

function onTime() {
  const player = $("#player");
  if (!works.play || player.paused) { works.lastPos = null; return; }
  const pos = player.currentTime;
  if (works.lastPos !== null && pos > works.lastPos && pos - works.lastPos < 1.5) {
    works.playedMs += (pos - works.lastPos) * 1000;   // only playback that actually happened
  }
  works.lastPos = pos;
  if (works.playedMs >= works.play.min_play_s * 1000 + 500) sendReceipt();
}

async function sendReceipt() {
  const play = works.play;
  if (!play) return;
  works.play = null;   // one receipt per play
  try {
    const typed = play.typed_data;
    const message = { ...typed.message, playedMs: Math.floor(works.playedMs) };
    const signature = await state.wallet.signTypedData(typed.domain, typesOf(typed), message);
    const result = await api("POST", `/api/plays/${play.play_id}/receipt`,
      { played_ms: message.playedMs, signature });
    works.counted.push(result);
    $("#works-status").textContent = `play of work ${play.work_id} counted in period ${result.period}`;
    await refreshWorks();
  } catch (e) { showError(e); }
}

// ------------------------------------------------------------------ start
async function startWorks() {
  try {
    const info = await api("GET", "/api/chain");
    if (!info.ready) { $("#works-chain").textContent = "this node runs without a chain: no works"; return; }
    works.info = info;
    $("#works-chain").hidden = true;
    $("#player").addEventListener("timeupdate", onTime);
    await refreshWorks();
    // Every 5 s while the tab is in view, one refresh at a time (a slow chain never stacks
    // them up); a hidden tab (a phone in a pocket) asks nothing and catches up on return.
    let busy = false;
    const poll = async () => {
      if (busy || document.hidden) return;
      busy = true;
      try { await Promise.all([refreshWorks(), renderTakes()]); } catch { /* next poll */ } finally { busy = false; }
    };
    setInterval(poll, 5000);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  } catch (e) { $("#works-chain").textContent = "works unavailable: " + (e.message || e); }
}

Object.assign(window, { renderTakes, refreshWorks });   // tests and the view switcher call them
$("#refresh-takes").onclick = () => renderTakes().catch(showError);
$("#verify-licence").onclick = () => verifyLicence();
$("#lookup-work").onclick = async () => {
  const id = $("#lookup-id").value.trim();
  if (!/^\d+$/.test(id)) { showError("a work id is a whole number"); return; }
  try {
    await api("GET", `/api/chain/works/${id}`);   // a clear error for an unknown work
    if (!works.lookedUp.includes(Number(id))) works.lookedUp.push(Number(id));
    showError("");
    await refreshWorks();
  } catch (e) { showError(e.message || e); }
};

(async () => {
  while (!state.address) await new Promise((r) => setTimeout(r, 50));   // identity first
  await startWorks();
})();
