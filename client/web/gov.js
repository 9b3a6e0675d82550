// jamnet governance in the browser: balances, devnet faucet, delegate, proposals and votes.
// Reads come from the node's JSON API; transactions are signed here, with this page's key
// (or the injected wallet), and sent to the chain's RPC.
import { $, api, showError, state } from "./app.js";
import { formatUnits, inSeconds } from "./format.js";

const gov = { info: null, account: null, proposals: [], lastTx: null, busy: false };
window.jamnetGov = gov;   // for end-to-end tests (read-only use)

const TOKEN_ABI = ["function delegate(address delegatee)"];
const GOVERNOR_ABI = [
  "function castVote(uint256 proposalId, uint8 support) returns (uint256)",
  "function propose(address[] targets, uint256[] values, bytes[] calldatas, string description) returns (uint256)",
  "function queue(address[] targets, uint256[] values, bytes[] calldatas, bytes32 descriptionHash) returns (uint256)",
  "function execute(address[] targets, uint256[] values, bytes[] calldatas, bytes32 descriptionHash) payable returns (uint256)",
];
const FEE_ABI = ["function setProtocolFee(uint16 feeBps)"];
const REWARDS_ABI = ["function claim(uint256 periodId, address to)"];


function timing(p) {
  const now = p.chain_time;
  if (p.state === "pending") return `voting opens ${inSeconds(p.vote_start - now)}`;
  if (p.state === "active") return `voting ends ${inSeconds(p.vote_end - now)}`;
  if (p.state === "queued") return p.eta > now ? `executable ${inSeconds(p.eta - now)}` : "executable now";
  return "";
}
// Amounts with sensible precision: at most 4 decimals (17-digit wei fractions helped nobody).
export const unit = (wei) => formatUnits(wei);

async function signer() {
  if (!gov.info.rpc_url && !(state.wallet && state.wallet.provider)) {
    throw new Error("this node's chain is external: use a browser wallet to send transactions");
  }
  if (state.wallet.provider) return state.wallet;   // injected wallet: its own provider
  return state.wallet.connect(new ethers.JsonRpcProvider(gov.info.rpc_url));
}

async function sendTx(build) {
  if (gov.busy) return;
  gov.busy = true;
  try {
    const tx = await build(await signer());
    gov.lastTx = tx.hash;
    await tx.wait();
    await refreshGov();
  } catch (e) {
    showError(e.shortMessage || e.message || e);
  } finally { gov.busy = false; }
}

async function refreshGov() {
  if (!gov.info || !state.address) return;
  gov.account = await api("GET", `/api/chain/accounts/${state.address}`);
  $("#gov-account").textContent = `${unit(gov.account.jam)} JAM · ${unit(gov.account.eth)} ETH · ` +
    `${unit(gov.account.votes)} votes` + (gov.account.delegate === ethers.ZeroAddress ? " (not delegated)" : "");
  gov.proposals = (await api("GET", "/api/chain/proposals")).proposals;
  const list = $("#proposals");
  list.replaceChildren();
  if (!gov.proposals.length) list.innerHTML = '<li class="empty">none yet</li>';
  for (const p of gov.proposals) {
    const li = document.createElement("li");
    li.dataset.id = p.id;
    const forVotes = BigInt(p.votes_for) + BigInt(p.votes_abstain);
    const reached = forVotes >= BigInt(p.quorum) ? "quorum reached" : `quorum ${unit(p.quorum)} JAM`;
    li.textContent = `${p.description} — ${p.state} · for ${unit(p.votes_for)} · against ${unit(p.votes_against)}` +
      ` · abstain ${unit(p.votes_abstain)} · ${reached}` + (timing(p) ? ` · ${timing(p)} (chain time) ` : " ");
    const call = (name) => sendTx((s) => new ethers.Contract(gov.info.addresses.JamGovernor, GOVERNOR_ABI, s)[name](
      p.targets, p.values.map(BigInt), p.calldatas, ethers.id(p.description)));
    if (p.state === "succeeded") {
      li.appendChild(Object.assign(document.createElement("button"), { textContent: "queue", className: "queue", type: "button", onclick: () => call("queue") }));
    }
    if (p.state === "queued" && p.eta <= p.chain_time) {
      li.appendChild(Object.assign(document.createElement("button"), { textContent: "execute", className: "execute", type: "button", onclick: () => call("execute") }));
    }
    if (p.state === "active") {
      for (const [label, support] of [["for", 1], ["against", 0], ["abstain", 2]]) {
        const b = document.createElement("button");
        b.textContent = label;
        b.className = "vote";
        b.dataset.support = String(support);
        b.onclick = () => {
          if (BigInt(gov.account.votes) === 0n) {
            showError(gov.account.delegate === ethers.ZeroAddress
              ? "your vote would weigh 0: delegate your votes first (they count for proposals made after that)"
              : "your vote would weigh 0: you hold no JAM votes at this proposal's snapshot");
            return;
          }
          sendTx((s) => new ethers.Contract(gov.info.addresses.JamGovernor, GOVERNOR_ABI, s)
            .castVote(BigInt(p.id), support));
        };
        li.appendChild(b);
      }
    }
    list.appendChild(li);
  }
}

// Node operators' rewards: the pot, the formula, every report; your node's rows can withdraw.
async function refreshRewards() {
  if (!gov.info || !gov.info.addresses.NodeRewards) return;
  const r = await api("GET", "/api/chain/rewards");
  const f = r.formula;
  $("#rewards-summary").textContent = `period ${r.current_period} (${r.period_s / 3600} h): pot so far ` +
    `${unit(r.pot_eth)} ETH and ${unit(r.pot_jam)} JAM · weight = musician-minutes × quality, quality = ` +
    `10000 − ${f.conceal_penalty}·concealed bps − ${f.latency_penalty}·(added ms − ${f.latency_target_ms})` +
    ` − ${f.overrun_penalty}·overrun bps`;
  $("#rewards-node").textContent = servedLine(r.this_node);
  const list = document.createDocumentFragment();
  if (!r.reports.length) {
    list.append(Object.assign(document.createElement("li"), { className: "empty", textContent: "no reports yet" }));
  }
  for (const x of r.reports) {
    const li = document.createElement("li");
    li.dataset.period = String(x.period);
    li.dataset.node = x.node;
    const mine = x.node === state.address ? " (you)" : "";
    li.textContent = `period ${x.period} · ${x.node.slice(0, 10)}…${mine} · ${x.minutes} musician-minutes ` +
      `(${x.countersigned_minutes} countersigned) · quality ${(x.quality_bps / 100).toFixed(2)} % · ` +
      `${(100 * x.weight_share).toFixed(1)} % of the weight · ${unit(x.eth)} ETH, ${unit(x.jam)} JAM · ${x.state} `;
    if (mine && x.state === "claimable") {
      li.append(Object.assign(document.createElement("button"), { textContent: "Withdraw", type: "button",
        className: "claim-reward", onclick: () => sendTx((s) =>
          new ethers.Contract(r.address, REWARDS_ABI, s).claim(BigInt(x.period), state.address)) }));
    }
    list.append(li);
  }
  $("#rewards").replaceChildren(list);
}

// What this node metered (musician-minutes and their quality) and where its last report is.
function servedLine(n) {
  if (!n) return "this node does not take part in operators' rewards";
  if (!n.metering) return "this node starts metering what it serves once the chain answers";
  const current = n.periods.find((p) => p.period === n.current_period);
  const m = current ? current.metered : null;
  const shared = m ? Object.values(m.shared_minutes).reduce((a, b) => a + b, 0) : 0;
  let text = `this node, period ${n.current_period} so far: ` + (m
    ? `${m.solo_minutes.toFixed(1)} solo + ${shared.toFixed(1)} shared musician-minutes · ` +
      `concealed ${(m.concealed_bps / 100).toFixed(2)} % · added ${m.added_ms} ms · ` +
      `overruns ${(m.overrun_bps / 100).toFixed(2)} %`
    : "nothing served yet");
  const last = n.periods.find((p) => p.report);
  if (last) {
    const signed = last.report.countersigned_by.map((c) => `${c.node.slice(0, 10)}… ${c.minutes} min`);
    text += ` · period ${last.period} report: ${last.report.state}` +
      (signed.length ? ` (countersigned by ${signed.join(", ")})` : "") +
      (last.report.note ? ` · ${last.report.note}` : "");
  }
  return text;
}

async function startGov() {
  try {
    const info = await api("GET", "/api/chain");
    if (!info.ready) { $("#chain-status").textContent = "this node runs without a chain"; return; }
    gov.info = info;
    $("#chain-status").textContent = `${info.mode} chain ${info.chain_id} · token ${info.addresses.JamToken}`;
    $("#gov-tools").hidden = false;
    $("#faucet").hidden = info.mode !== "devnet";
    await refreshGov();
    await refreshRewards();
    setInterval(() => { refreshGov().catch(() => {}); refreshRewards().catch(() => {}); }, 5000);
  } catch (e) {
    $("#chain-status").textContent = "chain unavailable: " + (e.message || e);
  }
}

Object.assign(window, { refreshGov, refreshRewards });   // tests refresh without the timer
$("#faucet").onclick = () => api("POST", "/api/faucet", { address: state.address })
  .then(refreshGov).catch(showError);
$("#propose-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const bps = Number(ev.target.fee_bps.value);
  if (!Number.isInteger(bps) || bps < 0 || bps > 1000) { showError("the fee is 0-1000 basis points (at most 10 %)"); return; }
  if (BigInt(gov.account.votes) < BigInt((gov.info.params || {}).proposal_threshold || 0)) {
    showError(`proposing needs ${unit(gov.info.params.proposal_threshold)} votes; you have ${unit(gov.account.votes)} (delegate first)`);
    return;
  }
  const works = gov.info.addresses.WorkRegistry;
  const data = new ethers.Interface(FEE_ABI).encodeFunctionData("setProtocolFee", [bps]);
  sendTx((s) => new ethers.Contract(gov.info.addresses.JamGovernor, GOVERNOR_ABI, s)
    .propose([works], [0n], [data], `Set the protocol fee to ${bps / 100} %`));
});
$("#delegate").onclick = () => sendTx((s) =>
  new ethers.Contract(gov.info.addresses.JamToken, TOKEN_ABI, s).delegate(state.address));

(async () => {
  while (!state.address) await new Promise((r) => setTimeout(r, 50));   // identity first
  await startGov();
})();
