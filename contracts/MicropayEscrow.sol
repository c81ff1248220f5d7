// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title MicropayEscrow (version 2)
/// @notice One-way payment channels from a payer (client) to a payee (freelancer), in ETH or an
/// ERC-20. The payer locks a deposit and pays off-chain with EIP-712 vouchers over the cumulative
/// amount; the payee (or any relayer) redeems the latest voucher at any time without closing.
///
/// Lifecycle and time rules:
/// - `claim`, `claimMany` and `claimRelayed` are valid while `block.timestamp <= expiry`.
/// - `reclaim` (payer takes back `deposit - claimed`) is valid only when `block.timestamp > expiry`.
/// - `requestClose` pulls expiry in to `now + window`, never earlier: the payee always keeps a
///   full challenge window to submit its best voucher, whatever the payer does.
/// - `close` lets the payee end the channel at once, optionally with a final voucher.
///
/// Channel identity: payer, payee, token, a payer-chosen salt and the voucher signer are not
/// stored but committed in the id, so opening costs a single storage slot. The signer is the payer
/// itself (committed as address(0)) or a key or contract the payer names at open: a company wallet
/// holds the money while a hot key signs per task. A contract signer is checked with EIP-1271. A
/// channel's slot is never cleared, so an id can never be opened twice and a voucher for a closed
/// channel can never be replayed on a new one.
///
/// Vouchers on the wire (`claim`, `claimMany`, `claimRelayed`, `close`) use a compact packed form,
/// with no ABI padding or offsets; vouchers are simply concatenated:
///
///     flags (1) | payer (20) | salt (12) | [signer (20)] | amount (12) | ledgerRoot (32) | signature
///
/// - flags bit 0 (`DELEGATED`): the channel's signer follows the salt; otherwise the payer signs.
/// - flags bit 1 (`CONTRACT_SIGNATURE`): the signature is a 2-byte big-endian length and that many
///   bytes, checked as a 65-byte ECDSA signature of the signer or by the signer's EIP-1271
///   `isValidSignature`; otherwise it is a 64-byte ERC-2098 signature `r | vs` of the signer's key
///   (this also serves EIP-7702 accounts, which keep signing with their key).
/// - flags bit 2 (`KEY_ONLY`, `close` only): nothing follows the key: close without a voucher.
/// A voucher signed by the payer's own key is 141 bytes.
contract MicropayEscrow is EIP712 {
    using SafeERC20 for IERC20;

    /// @notice Identifies a channel; its hash (`channelId`) is what vouchers sign.
    struct ChannelKey {
        address payer;
        address payee;
        address token; // address(0) for ETH
        uint96 salt; // chosen by the payer to open many channels to one payee
        address signer; // address(0): the payer signs its vouchers
    }

    /// @notice Channel state, packed into one storage slot.
    struct Channel {
        uint96 deposit;
        uint96 claimed;
        uint32 expiry; // 0 only for channels that were never opened
        uint24 window; // challenge window in seconds used by requestClose
        bool closed; // final: every mutating call reverts from now on
    }

    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(bytes32 channelId,uint256 cumulativeAmount,bytes32 ledgerRoot)");
    /// @notice What a payee signs so that anyone may submit its claim for a fee: the vouchers are
    /// bound by the keccak256 of their packed bytes, exactly as submitted.
    bytes32 public constant RELAY_TYPEHASH =
        keccak256("RelayRequest(address payee,address token,bytes32 vouchers,uint256 maxFee,uint256 deadline)");

    uint24 public constant MIN_WINDOW = 1 hours;
    uint24 public constant MAX_WINDOW = 30 days;

    uint256 public constant DELEGATED = 1;
    uint256 public constant CONTRACT_SIGNATURE = 2;
    uint256 public constant KEY_ONLY = 4;

    /// @dev `_claimAt` modes.
    uint256 private constant WITH_EVENT = 1;
    uint256 private constant WHOLE = 2;

    /// @dev Gas forwarded when pushing ETH; a recipient needing more is credited instead and
    /// withdraws with full gas, so a hostile counterparty can neither block nor grief a payout.
    uint256 private constant _PUSH_GAS = 30_000;

    mapping(bytes32 channelId => Channel) private _channels;

    /// @notice Payouts that could not be pushed (reverting receiver, blocked token address).
    mapping(address account => mapping(address token => uint256)) public owed;

    /// @dev Transient slot set while a deposit is being collected from a token, the only external call
    /// made before state is final; nothing that collects may run inside it (a nested deposit would be
    /// counted twice by the balance difference). keccak256("micropay.escrow.collecting") - 1.
    uint256 private constant _COLLECTING_SLOT = 0xb281628aeee39a8570341fc7ba1fe2e8f3477fbb648eeee3b178f027e1bb61bf;

    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        address token,
        uint96 salt,
        address signer,
        uint256 deposit,
        uint32 expiry,
        bytes32 terms
    );
    event ToppedUp(
        bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 amount, uint256 deposit
    );
    event Extended(bytes32 indexed channelId, address indexed payer, address indexed payee, uint32 expiry);
    event CloseRequested(bytes32 indexed channelId, address indexed payer, address indexed payee, uint32 expiry);
    /// @dev One per voucher redeemed by `claim`, `claimMany` or `claimRelayed` (`close` reports its final
    /// total in `Closed`): `claimed` is the channel's new total, so the payout is its increase since the
    /// channel's last event. The parties are not topics: they are committed in the id and
    /// named, indexed, by the channel's `ChannelOpened`; each topic would cost 375 gas per claimed channel.
    event Claimed(bytes32 indexed channelId, uint256 claimed, bytes32 ledgerRoot);
    event ClaimSkipped(bytes32 indexed channelId, address indexed payer, address indexed payee, bytes4 reason);
    /// @dev Emitted once per `claimRelayed`, after its `Claimed` events: the payee got `total - fee`.
    event Relayed(address indexed payee, address indexed relayer, address token, uint256 total, uint256 fee);
    /// @dev `ledgerRoot` is that of the final voucher this close redeemed, or zero if it redeemed none.
    event Closed(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        uint256 claimed,
        uint256 refund,
        bytes32 ledgerRoot
    );
    event Reclaimed(bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 refund);
    event PayoutDeferred(address indexed account, address indexed token, uint256 amount);
    event Withdrawn(address indexed account, address indexed token, address to, uint256 amount);

    error ChannelExists(bytes32 channelId);
    error ChannelNotFound(bytes32 channelId);
    error ChannelFinal(bytes32 channelId);
    error ChannelExpired(bytes32 channelId, uint32 expiry);
    error ChannelNotExpired(bytes32 channelId, uint32 expiry);
    error InvalidPayee(address payee);
    error InvalidSigner(address signer);
    error InvalidRecipient(address to);
    error InvalidAmount();
    error InvalidToken();
    error InvalidValue(uint256 value);
    error InvalidExpiry(uint256 expiry);
    error InvalidWindow(uint256 window);
    error AmountTooLarge(uint256 amount);
    error InvalidSignature();
    error InvalidEncoding();
    error NothingToClaim(bytes32 channelId, uint256 claimed);
    error NotFullyFunded(bytes32 channelId, uint256 deposit);
    error RelayExpired(uint256 deadline);
    error FeeTooHigh(uint256 fee, uint256 limit);
    error NothingToWithdraw();
    error EthTransferFailed(address to);
    error Reentrancy();

    constructor() EIP712("MicropayEscrow", "2") {}

    // ------------------------------------------------------------------ views

    function channelId(ChannelKey calldata key) external pure returns (bytes32) {
        return _channelId(key.payer, key.payee, key.token, key.salt, key.signer);
    }

    function channel(bytes32 id) external view returns (Channel memory) {
        return _channels[id];
    }

    /// @notice The EIP-712 digest a channel's signer signs, so off-chain code can prove it hashes identically.
    function voucherDigest(bytes32 id, uint256 cumulativeAmount, bytes32 ledgerRoot) public view returns (bytes32) {
        return _hashTypedDataV4(_hashWords(VOUCHER_TYPEHASH, id, bytes32(cumulativeAmount), ledgerRoot));
    }

    /// @notice The EIP-712 digest of a relay request a payee signs; `vouchers` is keccak256 of the packed vouchers.
    function relayDigest(address payee, address token, bytes32 vouchers, uint256 maxFee, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(RELAY_TYPEHASH, payee, token, vouchers, maxFee, deadline))
        );
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- payer

    /// @notice Open an ETH channel from msg.sender to `payee`; the deposit is msg.value. `signer`
    /// signs the vouchers (address(0): msg.sender itself); `terms` (may be zero) is only emitted,
    /// for example the hash of the plan both sides agreed.
    function open(address payee, address signer, uint96 salt, uint32 expiry, uint24 window, bytes32 terms)
        external
        payable
        returns (bytes32 id)
    {
        return _open(payee, address(0), signer, salt, msg.value, expiry, window, terms);
    }

    /// @notice Open an ERC-20 channel (approve first). The deposit is what actually arrived, so
    /// fee-on-transfer tokens are credited correctly. Rebasing tokens are not supported.
    function openToken(
        address payee,
        address token,
        address signer,
        uint96 salt,
        uint256 amount,
        uint32 expiry,
        uint24 window,
        bytes32 terms
    ) external returns (bytes32 id) {
        if (token == address(0)) revert InvalidToken();
        return _open(payee, token, signer, salt, amount, expiry, window, terms);
    }

    /// @notice `openToken` for an ERC-2612 token with the approval given by signature. A permit that
    /// was already used (someone front-ran it) is ignored: the open goes through if the allowance is there.
    function openWithPermit(
        address payee,
        address token,
        address signer,
        uint96 salt,
        uint256 amount,
        uint32 expiry,
        uint24 window,
        bytes32 terms,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (bytes32 id) {
        if (token == address(0)) revert InvalidToken();
        try IERC20Permit(token).permit(msg.sender, address(this), amount, permitDeadline, v, r, s) {} catch {}
        return _open(payee, token, signer, salt, amount, expiry, window, terms);
    }

    /// @notice Add to the deposit of msg.sender's channel; ETH top-ups send exactly `amount`.
    function topUp(address payee, address token, uint96 salt, address signer, uint256 amount) external payable {
        bytes32 id = _channelId(msg.sender, payee, token, salt, signer);
        Channel memory c = _live(id);
        if (block.timestamp > c.expiry) revert ChannelExpired(id, c.expiry);
        if (msg.value != (token == address(0) ? amount : 0)) revert InvalidValue(msg.value);
        uint256 received = _collect(token, amount);
        // A token's transferFrom may call out; read the channel again, and refuse it if it ended meanwhile.
        if (token != address(0)) c = _live(id);
        uint256 deposit = c.deposit + received;
        if (deposit > type(uint96).max) revert AmountTooLarge(deposit);
        c.deposit = uint96(deposit);
        _channels[id] = c;
        emit ToppedUp(id, msg.sender, payee, received, deposit);
    }

    /// @notice Move the expiry of msg.sender's channel later. This only ever gives the payee more time.
    function extend(address payee, address token, uint96 salt, address signer, uint32 newExpiry) external {
        bytes32 id = _channelId(msg.sender, payee, token, salt, signer);
        Channel memory c = _live(id);
        if (newExpiry <= c.expiry || newExpiry <= block.timestamp) revert InvalidExpiry(newExpiry);
        c.expiry = newExpiry;
        _channels[id] = c;
        emit Extended(id, msg.sender, payee, newExpiry);
    }

    /// @notice Start the payer's exit: expiry becomes min(expiry, now + window). The payee may
    /// still claim until then; afterwards the payer reclaims the rest.
    function requestClose(address payee, address token, uint96 salt, address signer) external {
        bytes32 id = _channelId(msg.sender, payee, token, salt, signer);
        Channel memory c = _live(id);
        if (block.timestamp > c.expiry) revert ChannelExpired(id, c.expiry);
        uint256 deadline = block.timestamp + c.window;
        if (deadline < c.expiry) {
            c.expiry = uint32(deadline);
            _channels[id] = c;
        }
        emit CloseRequested(id, msg.sender, payee, c.expiry);
    }

    /// @notice After expiry, return `deposit - claimed` to the payer and end the channel.
    function reclaim(address payee, address token, uint96 salt, address signer) external {
        bytes32 id = _channelId(msg.sender, payee, token, salt, signer);
        Channel memory c = _live(id);
        if (block.timestamp <= c.expiry) revert ChannelNotExpired(id, c.expiry);
        c.closed = true;
        _channels[id] = c;
        uint256 refund = c.deposit - c.claimed;
        emit Reclaimed(id, msg.sender, payee, refund);
        _pay(msg.sender, token, refund);
    }

    // ---------------------------------------------------------------- payee

    /// @notice Redeem one packed voucher without closing. Anyone may submit it; funds only ever go
    /// to the channel's payee. Pays `min(cumulativeAmount, deposit) - claimed`.
    function claim(address payee, address token, bytes calldata voucher) external returns (uint256 amount) {
        (uint256 end, bytes32 id, bytes4 err, uint256 paid,) =
            _claimAt(voucher, 0, payee, token, WITH_EVENT, _domainSeparatorV4());
        if (end != voucher.length) revert InvalidEncoding();
        _revertWith(err, id);
        _pay(payee, token, paid);
        return paid;
    }

    /// @notice Redeem many packed vouchers of one payee in one token in one transaction, paid out in
    /// a single transfer. A voucher that cannot be redeemed (bad signature, unknown, final or expired
    /// channel, nothing new to claim) is skipped with a `ClaimSkipped` event carrying the error
    /// selector, so one channel that changed between signing and mining cannot block the others.
    function claimMany(address payee, address token, bytes calldata vouchers) external returns (uint256 total) {
        bytes32 domain = _domainSeparatorV4();
        for (uint256 at; at < vouchers.length;) {
            bytes32 id;
            bytes4 err;
            uint256 amount;
            address payer;
            (at, id, err, amount, payer) = _claimAt(vouchers, at, payee, token, WITH_EVENT, domain);
            if (err != 0) {
                emit ClaimSkipped(id, payer, payee, err);
                continue;
            }
            unchecked {
                total += amount; // at most 2**96 per channel
            }
        }
        _pay(payee, token, total);
    }

    /// @notice Submit a payee's signed relay request: every voucher is redeemed in full (or the
    /// call reverts), the caller receives `fee` (at most the payee's `maxFee`) out of the payout and
    /// the payee the rest. The request is bound to this chain and escrow (EIP-712 domain), to the
    /// payee, the token and the exact voucher bytes; it is usable once, since each voucher must be
    /// covered by its deposit and a second submission would find nothing to claim.
    function claimRelayed(
        address payee,
        address token,
        bytes calldata vouchers,
        uint256 maxFee,
        uint256 deadline,
        uint256 fee,
        bytes calldata payeeSignature
    ) external returns (uint256 total) {
        if (block.timestamp > deadline) revert RelayExpired(deadline);
        if (fee > maxFee) revert FeeTooHigh(fee, maxFee);
        bytes32 digest = relayDigest(payee, token, keccak256(vouchers), maxFee, deadline);
        if (!_isValidSignature(payee, digest, payeeSignature)) revert InvalidSignature();
        bytes32 domain = _domainSeparatorV4();
        for (uint256 at; at < vouchers.length;) {
            bytes32 id;
            bytes4 err;
            uint256 amount;
            (at, id, err, amount,) = _claimAt(vouchers, at, payee, token, WITH_EVENT | WHOLE, domain);
            _revertWith(err, id);
            unchecked {
                total += amount; // at most 2**96 per channel
            }
        }
        if (fee > total) revert FeeTooHigh(fee, total);
        emit Relayed(payee, msg.sender, token, total, fee);
        _pay(payee, token, total - fee);
        _pay(msg.sender, token, fee);
    }

    /// @notice The payee (msg.sender) ends the channel at once. `voucher` is a packed voucher,
    /// redeemed first, or with `KEY_ONLY` just the channel's key; the remainder goes back to the payer.
    /// A voucher given here is always verified, even if it redeems nothing new.
    function close(address token, bytes calldata voucher) external {
        uint256 end;
        bytes32 id;
        uint256 amount;
        address payer;
        bytes32 root;
        if (voucher.length != 0 && uint8(voucher[0]) & KEY_ONLY != 0) {
            uint96 salt;
            address signer;
            (end, payer, salt, signer) = _keyAt(voucher);
            id = _channelId(payer, msg.sender, token, salt, signer);
        } else {
            bytes4 err;
            (end, id, err, amount, payer) = _claimAt(voucher, 0, msg.sender, token, 0, _domainSeparatorV4());
            // A final voucher that was already claimed is fine: closing is what the payee wants.
            if (err != NothingToClaim.selector) _revertWith(err, id);
            if (amount != 0) root = _rootAt(voucher);
        }
        if (end != voucher.length) revert InvalidEncoding();
        Channel memory c = _live(id);
        c.closed = true;
        _channels[id] = c;
        uint256 refund = c.deposit - c.claimed;
        emit Closed(id, payer, msg.sender, c.claimed, refund, root);
        _pay(msg.sender, token, amount);
        _pay(payer, token, refund);
    }

    // ---------------------------------------------------------------- anyone

    /// @notice Withdraw msg.sender's payouts that could not be pushed earlier, to `to` (for an
    /// account whose own address cannot receive, e.g. blocked by the token).
    function withdraw(address token, address to) external {
        if (to == address(0)) revert InvalidRecipient(to);
        _withdraw(msg.sender, token, to);
    }

    /// @notice Push `account`'s deferred payouts to `account` itself, with all the gas given: anyone
    /// may call it, for a contract that cannot make calls of its own.
    function withdrawFor(address account, address token) external {
        _withdraw(account, token, account);
    }

    // -------------------------------------------------------------- internal

    function _open(
        address payee,
        address token,
        address signer,
        uint96 salt,
        uint256 amount,
        uint32 expiry,
        uint24 window,
        bytes32 terms
    ) private returns (bytes32 id) {
        if (payee == address(0) || payee == msg.sender) revert InvalidPayee(payee);
        if (signer == msg.sender || signer == payee) revert InvalidSigner(signer);
        if (expiry <= block.timestamp) revert InvalidExpiry(expiry);
        if (window < MIN_WINDOW || window > MAX_WINDOW) revert InvalidWindow(window);
        id = _channelId(msg.sender, payee, token, salt, signer);
        uint256 slot;
        uint256 word;
        assembly ("memory-safe") {
            mstore(0x00, id)
            mstore(0x20, _channels.slot)
            slot := keccak256(0x00, 0x40)
            word := sload(slot)
        }
        if (word != 0) revert ChannelExists(id);
        uint256 received = _collect(token, amount);
        if (received > type(uint96).max) revert AmountTooLarge(received);
        assembly ("memory-safe") {
            // Channel(received, 0, expiry, window, false), packed as Solidity packs the struct.
            sstore(slot, or(received, or(shl(192, expiry), shl(224, window))))
        }
        emit ChannelOpened(id, msg.sender, payee, token, salt, signer, received, expiry, terms);
    }

    /// @dev Take `amount` from msg.sender; returns what actually arrived. For ETH the caller has
    /// already checked that msg.value is `amount`. A token's transferFrom is the one external call
    /// made before state is written, so nothing that collects may run inside it.
    function _collect(address token, uint256 amount) private returns (uint256 received) {
        if (amount == 0) revert InvalidAmount();
        if (token == address(0)) return amount;
        bool nested;
        assembly ("memory-safe") {
            nested := tload(_COLLECTING_SLOT)
            tstore(_COLLECTING_SLOT, 1)
        }
        if (nested) revert Reentrancy();
        uint256 before = _balanceOfThis(token);
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        received = _balanceOfThis(token) - before;
        assembly ("memory-safe") {
            tstore(_COLLECTING_SLOT, 0)
        }
        if (received == 0) revert InvalidAmount();
    }

    /// @dev No token may leave the escrow while a deposit is being collected: the deposit is the
    /// balance difference, which a payout inside the token's transferFrom would shrink.
    function _refuseWhileCollecting() private view {
        bool collecting;
        assembly ("memory-safe") {
            collecting := tload(_COLLECTING_SLOT)
        }
        if (collecting) revert Reentrancy();
    }

    /// @dev `token.balanceOf(this)`, without Solidity's ABI round trip. Reverts InvalidToken if the
    /// token does not answer with a word.
    function _balanceOfThis(address token) private view returns (uint256 held) {
        bool ok;
        assembly ("memory-safe") {
            mstore(0x00, 0x70a08231) // balanceOf(address)
            mstore(0x20, address())
            ok := and(gt(returndatasize(), 0x1f), staticcall(gas(), token, 0x1c, 0x24, 0x00, 0x20))
            held := mload(0x00)
        }
        if (!ok) revert InvalidToken();
    }

    /// @dev Read a `KEY_ONLY` packed key; returns the offset just past it and the key's parts.
    function _keyAt(bytes calldata data) private pure returns (uint256 end, address payer, uint96 salt, address signer) {
        uint256 flags;
        assembly ("memory-safe") {
            let p := data.offset
            flags := byte(0, calldataload(p))
            payer := shr(96, calldataload(add(p, 1)))
            salt := shr(160, calldataload(add(p, 21)))
            end := 33
            if and(flags, 1) {
                signer := shr(96, calldataload(add(p, 33)))
                end := 53
            }
        }
        if (flags & ~DELEGATED != KEY_ONLY) revert InvalidEncoding();
    }

    /// @dev The ledger root of the (single) packed voucher in `data`.
    function _rootAt(bytes calldata data) private pure returns (bytes32 root) {
        uint256 at = uint8(data[0]) & DELEGATED != 0 ? 65 : 45;
        assembly ("memory-safe") {
            root := calldataload(add(data.offset, at))
        }
    }

    /// @dev Redeem the packed voucher at `at` in `data` (see the contract's notes for the layout):
    /// validate it, record the claim and, with `WITH_EVENT` in `mode`, emit `Claimed`; the caller
    /// checks `end` and pays. Returns an error selector instead of reverting so `claimMany` can skip,
    /// and writes nothing unless `err == 0`. The signature is checked before "nothing to claim", so
    /// a forged voucher is always reported as one. With `WHOLE`, a voucher above its deposit is
    /// refused (relayed claims must be usable once). Reverts only for bytes that are not a voucher
    /// (InvalidEncoding). Mostly assembly: it is the inner loop of every claim, and Solidity's
    /// structs and stack shuffling cost as much as the signature check.
    function _claimAt(bytes calldata data, uint256 at, address payee, address token, uint256 mode, bytes32 domain)
        private
        returns (uint256 end, bytes32 id, bytes4 err, uint256 amount, address payer)
    {
        uint256 flags;
        address signer;
        uint256 cumulative;
        bytes32 root;
        uint256 sigStart;
        uint256 sigLength;
        assembly ("memory-safe") {
            let p := add(data.offset, at)
            flags := byte(0, calldataload(p))
            payer := shr(96, calldataload(add(p, 1)))
            let salt := shr(160, calldataload(add(p, 21)))
            p := add(p, 33)
            if and(flags, 1) {
                signer := shr(96, calldataload(p))
                p := add(p, 20)
            }
            cumulative := shr(160, calldataload(p))
            root := calldataload(add(p, 12))
            p := add(p, 44)
            sigLength := 64
            if and(flags, 2) {
                sigLength := shr(240, calldataload(p))
                p := add(p, 2)
            }
            sigStart := sub(p, data.offset)
            end := add(sigStart, sigLength)
            let m := mload(0x40)
            mstore(m, payer)
            mstore(add(m, 0x20), payee)
            mstore(add(m, 0x40), token)
            mstore(add(m, 0x60), salt)
            mstore(add(m, 0x80), signer)
            id := keccak256(m, 0xa0)
        }
        if (end > data.length || flags > (DELEGATED | CONTRACT_SIGNATURE)) revert InvalidEncoding();
        uint256 slot;
        uint256 word;
        assembly ("memory-safe") {
            mstore(0x00, id)
            mstore(0x20, _channels.slot)
            slot := keccak256(0x00, 0x40)
            word := sload(slot)
        }
        uint256 expiry = uint32(word >> 192);
        if (expiry == 0) return (end, id, ChannelNotFound.selector, 0, payer);
        if (word >> 248 != 0) return (end, id, ChannelFinal.selector, 0, payer);
        if (block.timestamp > expiry) return (end, id, ChannelExpired.selector, 0, payer);
        if (signer == address(0)) signer = payer;
        bytes32 digest;
        bool valid;
        bytes32 typehash = VOUCHER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typehash)
            mstore(add(m, 0x20), id)
            mstore(add(m, 0x40), cumulative)
            mstore(add(m, 0x60), root)
            let structHash := keccak256(m, 0x80)
            mstore(m, 0x1901)
            mstore(add(m, 0x20), domain)
            mstore(add(m, 0x40), structHash)
            digest := keccak256(add(m, 0x1e), 0x42)
            if iszero(and(flags, 2)) {
                // ERC-2098: r | vs, where vs is yParity << 255 | s. Only low s (EIP-2) is accepted.
                let r := calldataload(add(data.offset, sigStart))
                let vs := calldataload(add(data.offset, add(sigStart, 0x20)))
                let s := and(vs, 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff)
                if iszero(gt(s, 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0)) {
                    mstore(m, digest)
                    mstore(add(m, 0x20), add(27, shr(255, vs)))
                    mstore(add(m, 0x40), r)
                    mstore(add(m, 0x60), s)
                    mstore(0x00, 0)
                    pop(staticcall(gas(), 1, m, 0x80, 0x00, 0x20))
                    let recovered := mload(0x00)
                    valid := and(eq(recovered, signer), iszero(iszero(recovered)))
                }
            }
        }
        if (flags & CONTRACT_SIGNATURE != 0) {
            valid = _isValidSignature(signer, digest, data[sigStart:end]);
        }
        if (!valid) return (end, id, InvalidSignature.selector, 0, payer);
        uint256 deposit = uint96(word);
        if (mode & WHOLE != 0 && cumulative > deposit) return (end, id, NotFullyFunded.selector, 0, payer);
        uint256 claimed = cumulative < deposit ? cumulative : deposit;
        uint256 before = uint96(word >> 96);
        if (claimed <= before) return (end, id, NothingToClaim.selector, 0, payer);
        unchecked {
            amount = claimed - before;
        }
        bytes32 topic = Claimed.selector;
        assembly ("memory-safe") {
            sstore(slot, or(and(word, not(shl(96, 0xffffffffffffffffffffffff))), shl(96, claimed)))
            if and(mode, 1) {
                let m := mload(0x40)
                mstore(m, claimed)
                mstore(add(m, 0x20), root)
                log2(m, 0x40, topic, id)
            }
        }
    }

    /// @dev A 65-byte ECDSA signature of `signer`'s key (an EOA or an EIP-7702 account), or else,
    /// for a contract, whatever its EIP-1271 `isValidSignature` accepts.
    function _isValidSignature(address signer, bytes32 digest, bytes calldata signature) private view returns (bool) {
        if (signature.length == 65) {
            (address recovered, ECDSA.RecoverError error,) = ECDSA.tryRecoverCalldata(digest, signature);
            if (error == ECDSA.RecoverError.NoError && recovered == signer) return true;
        }
        return signer.code.length != 0
            && SignatureChecker.isValidERC1271SignatureNowCalldata(signer, digest, signature);
    }

    function _withdraw(address account, address token, address to) private {
        uint256 amount = owed[account][token];
        if (amount == 0) revert NothingToWithdraw();
        owed[account][token] = 0;
        emit Withdrawn(account, token, to, amount);
        if (token == address(0)) {
            if (!_sendEth(to, amount, gasleft())) revert EthTransferFailed(to);
        } else {
            _refuseWhileCollecting();
            IERC20(token).safeTransfer(to, amount);
        }
    }

    /// @dev Push a payout; if the recipient cannot take it, credit it for `withdraw` instead.
    function _pay(address to, address token, uint256 amount) private {
        if (amount == 0) return;
        bool ok;
        if (token == address(0)) {
            ok = _sendEth(to, amount, _PUSH_GAS);
        } else {
            _refuseWhileCollecting();
            ok = IERC20(token).trySafeTransfer(to, amount);
        }
        if (!ok) {
            owed[to][token] += amount;
            emit PayoutDeferred(to, token, amount);
        }
    }

    /// @dev Send ETH copying no return data back, so a recipient cannot make us pay for a huge revert.
    function _sendEth(address to, uint256 amount, uint256 gasLimit) private returns (bool ok) {
        assembly ("memory-safe") {
            ok := call(gasLimit, to, amount, 0, 0, 0, 0)
        }
    }

    /// @dev keccak256(abi.encode(payer, payee, token, salt, signer)), hashed in scratch memory past
    /// the free pointer without advancing it, so claimMany's loop allocates no memory.
    function _channelId(address payer, address payee, address token, uint96 salt, address signer)
        private
        pure
        returns (bytes32 hash)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, payer)
            mstore(add(ptr, 0x20), payee)
            mstore(add(ptr, 0x40), token)
            mstore(add(ptr, 0x60), salt)
            mstore(add(ptr, 0x80), signer)
            hash := keccak256(ptr, 0xa0)
        }
    }

    /// @dev keccak256(abi.encode(a, b, c, d)) for four words, hashed like `_channelId`.
    function _hashWords(bytes32 a, bytes32 b, bytes32 c, bytes32 d) private pure returns (bytes32 hash) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, a)
            mstore(add(ptr, 0x20), b)
            mstore(add(ptr, 0x40), c)
            mstore(add(ptr, 0x60), d)
            hash := keccak256(ptr, 0x80)
        }
    }

    function _live(bytes32 id) private view returns (Channel memory c) {
        c = _channels[id];
        if (c.expiry == 0) revert ChannelNotFound(id);
        if (c.closed) revert ChannelFinal(id);
    }

    /// @dev Turn a `_claim` error selector back into the matching revert.
    function _revertWith(bytes4 err, bytes32 id) private view {
        if (err == 0) return;
        if (err == ChannelNotFound.selector) revert ChannelNotFound(id);
        if (err == ChannelFinal.selector) revert ChannelFinal(id);
        if (err == ChannelExpired.selector) revert ChannelExpired(id, _channels[id].expiry);
        if (err == NothingToClaim.selector) revert NothingToClaim(id, _channels[id].claimed);
        if (err == NotFullyFunded.selector) revert NotFullyFunded(id, _channels[id].deposit);
        revert InvalidSignature();
    }
}
