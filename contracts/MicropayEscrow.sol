// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title MicropayEscrow
/// @notice One-way payment channels from a payer (client) to a payee (freelancer), in ETH or an
/// ERC-20. The payer locks a deposit and pays off-chain with EIP-712 vouchers over the cumulative
/// amount; the payee (or any relayer) redeems the latest voucher at any time without closing.
///
/// Lifecycle and time rules:
/// - `claim` / `claimMany` are valid while `block.timestamp <= expiry`.
/// - `reclaim` (payer takes back `deposit - claimed`) is valid only when `block.timestamp > expiry`.
/// - `requestClose` pulls expiry in to `now + window`, never earlier: the payee always keeps a
///   full challenge window to submit its best voucher, whatever the payer does.
/// - `close` lets the payee end the channel at once, optionally with a final voucher.
///
/// Channel identity: payer, payee, token and a payer-chosen salt are not stored but committed in
/// the id, so opening costs a single storage slot. A channel's slot is never cleared, so an id can
/// never be opened twice and a voucher for a closed channel can never be replayed on a new one.
contract MicropayEscrow is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Identifies a channel; its hash (`channelId`) is what vouchers sign.
    struct ChannelKey {
        address payer;
        address payee;
        address token; // address(0) for ETH
        uint96 salt; // chosen by the payer to open many channels to one payee
    }

    /// @notice A voucher as `claimMany` takes it: the payee and token are shared by the batch.
    struct PayerVoucher {
        address payer;
        uint96 salt;
        uint256 cumulativeAmount;
        bytes32 ledgerRoot;
        bytes signature;
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

    uint24 public constant MIN_WINDOW = 1 hours;
    uint24 public constant MAX_WINDOW = 30 days;

    /// @dev Gas forwarded when pushing ETH; a recipient needing more is credited instead and
    /// withdraws with full gas, so a hostile counterparty can neither block nor grief a payout.
    uint256 private constant _PUSH_GAS = 30_000;

    mapping(bytes32 channelId => Channel) private _channels;

    /// @notice Payouts that could not be pushed (reverting receiver, blocked token address).
    mapping(address account => mapping(address token => uint256)) public owed;

    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        address token,
        uint96 salt,
        uint256 deposit,
        uint32 expiry
    );
    event ToppedUp(
        bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 amount, uint256 deposit
    );
    event Extended(bytes32 indexed channelId, address indexed payer, address indexed payee, uint32 expiry);
    event CloseRequested(bytes32 indexed channelId, address indexed payer, address indexed payee, uint32 expiry);
    /// @dev `claimed` is the channel's new total; the payout is its increase since the last event.
    event Claimed(
        bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 claimed, bytes32 ledgerRoot
    );
    event ClaimSkipped(bytes32 indexed channelId, address indexed payer, address indexed payee, bytes4 reason);
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
    error NotPayer(address caller);
    error NotPayee(address caller);
    error InvalidPayee(address payee);
    error InvalidRecipient(address to);
    error InvalidAmount();
    error InvalidToken();
    error InvalidValue(uint256 value);
    error InvalidExpiry(uint256 expiry);
    error InvalidWindow(uint256 window);
    error AmountTooLarge(uint256 amount);
    error InvalidSignature();
    error NothingToClaim(bytes32 channelId, uint256 claimed);
    error NothingToWithdraw();
    error EthTransferFailed(address to);

    constructor() EIP712("MicropayEscrow", "1") {}

    // ------------------------------------------------------------------ views

    function channelId(ChannelKey calldata key) public pure returns (bytes32) {
        return _channelId(key.payer, key.payee, key.token, key.salt);
    }

    function channel(bytes32 id) external view returns (Channel memory) {
        return _channels[id];
    }

    /// @notice The EIP-712 digest a payer signs, so off-chain code can prove it hashes identically.
    function voucherDigest(bytes32 id, uint256 cumulativeAmount, bytes32 ledgerRoot) public view returns (bytes32) {
        return _hashTypedDataV4(_hashWords(VOUCHER_TYPEHASH, id, bytes32(cumulativeAmount), ledgerRoot));
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- payer

    /// @notice Open an ETH channel from msg.sender to `payee`; the deposit is msg.value.
    function open(address payee, uint96 salt, uint32 expiry, uint24 window)
        external
        payable
        nonReentrant
        returns (bytes32 id)
    {
        return _open(payee, address(0), salt, msg.value, expiry, window);
    }

    /// @notice Open an ERC-20 channel (approve first). The deposit is what actually arrived, so
    /// fee-on-transfer tokens are credited correctly.
    function openToken(address payee, address token, uint96 salt, uint256 amount, uint32 expiry, uint24 window)
        external
        nonReentrant
        returns (bytes32 id)
    {
        if (token == address(0)) revert InvalidToken();
        return _open(payee, token, salt, amount, expiry, window);
    }

    /// @notice `open` for an ERC-2612 token with the approval given by signature. A permit that was
    /// already used (someone front-ran it) is ignored: the open goes through if the allowance is there.
    function openWithPermit(
        address payee,
        address token,
        uint96 salt,
        uint256 amount,
        uint32 expiry,
        uint24 window,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (bytes32 id) {
        if (token == address(0)) revert InvalidToken();
        try IERC20Permit(token).permit(msg.sender, address(this), amount, permitDeadline, v, r, s) {} catch {}
        return _open(payee, token, salt, amount, expiry, window);
    }

    function topUp(ChannelKey calldata key, uint256 amount) external payable nonReentrant {
        bytes32 id = channelId(key);
        Channel memory c = _live(id);
        _onlyPayer(key);
        if (block.timestamp > c.expiry) revert ChannelExpired(id, c.expiry);
        // ETH top-ups send exactly `amount`; token top-ups send no ETH.
        if (msg.value != (key.token == address(0) ? amount : 0)) revert InvalidValue(msg.value);
        uint256 received = _collect(key.token, amount);
        uint256 deposit = c.deposit + received;
        if (deposit > type(uint96).max) revert AmountTooLarge(deposit);
        _channels[id].deposit = uint96(deposit);
        emit ToppedUp(id, key.payer, key.payee, received, deposit);
    }

    /// @notice Move expiry later. This only ever gives the payee more time.
    function extend(ChannelKey calldata key, uint32 newExpiry) external nonReentrant {
        bytes32 id = channelId(key);
        Channel memory c = _live(id);
        _onlyPayer(key);
        if (newExpiry <= c.expiry || newExpiry <= block.timestamp) revert InvalidExpiry(newExpiry);
        _channels[id].expiry = newExpiry;
        emit Extended(id, key.payer, key.payee, newExpiry);
    }

    /// @notice Start the payer's exit: expiry becomes min(expiry, now + window). The payee may
    /// still claim until then; afterwards the payer reclaims the rest.
    function requestClose(ChannelKey calldata key) external nonReentrant {
        bytes32 id = channelId(key);
        Channel memory c = _live(id);
        _onlyPayer(key);
        if (block.timestamp > c.expiry) revert ChannelExpired(id, c.expiry);
        uint256 deadline = block.timestamp + c.window;
        if (deadline < c.expiry) {
            c.expiry = uint32(deadline);
            _channels[id].expiry = c.expiry;
        }
        emit CloseRequested(id, key.payer, key.payee, c.expiry);
    }

    /// @notice After expiry, return `deposit - claimed` to the payer and end the channel.
    function reclaim(ChannelKey calldata key) external nonReentrant {
        bytes32 id = channelId(key);
        Channel memory c = _live(id);
        _onlyPayer(key);
        if (block.timestamp <= c.expiry) revert ChannelNotExpired(id, c.expiry);
        _channels[id].closed = true;
        uint256 refund = c.deposit - c.claimed;
        emit Reclaimed(id, key.payer, key.payee, refund);
        _pay(key.payer, key.token, refund);
    }

    // ---------------------------------------------------------------- payee

    /// @notice Redeem a voucher without closing. Anyone may submit it; funds only ever go to the
    /// channel's payee. Pays `min(cumulativeAmount, deposit) - claimed`.
    function claim(ChannelKey calldata key, uint256 cumulativeAmount, bytes32 ledgerRoot, bytes calldata signature)
        external
        nonReentrant
        returns (uint256 amount)
    {
        bytes32 id;
        bytes4 err;
        uint256 claimed;
        (id, err, amount, claimed) =
            _claim(key.payer, key.payee, key.token, key.salt, cumulativeAmount, ledgerRoot, signature);
        _revertWith(err, id);
        emit Claimed(id, key.payer, key.payee, claimed, ledgerRoot);
        _pay(key.payee, key.token, amount);
    }

    /// @notice Redeem many vouchers of one payee in one token in one transaction, paid out in a
    /// single transfer. A voucher that cannot be redeemed (bad signature, unknown, final or expired
    /// channel, nothing new to claim) is skipped with a `ClaimSkipped` event carrying the error
    /// selector, so one channel that changed between signing and mining cannot block the others.
    function claimMany(address payee, address token, PayerVoucher[] calldata vouchers)
        external
        nonReentrant
        returns (uint256 total)
    {
        for (uint256 i; i < vouchers.length; ++i) {
            PayerVoucher calldata v = vouchers[i];
            (bytes32 id, bytes4 err, uint256 amount, uint256 claimed) =
                _claim(v.payer, payee, token, v.salt, v.cumulativeAmount, v.ledgerRoot, v.signature);
            if (err != 0) {
                emit ClaimSkipped(id, v.payer, payee, err);
                continue;
            }
            emit Claimed(id, v.payer, payee, claimed, v.ledgerRoot);
            total += amount;
        }
        _pay(payee, token, total);
    }

    /// @notice The payee ends the channel at once: an optional final voucher (empty signature for
    /// none) is redeemed, and the remainder goes back to the payer.
    function close(ChannelKey calldata key, uint256 cumulativeAmount, bytes32 ledgerRoot, bytes calldata signature)
        external
        nonReentrant
    {
        if (msg.sender != key.payee) revert NotPayee(msg.sender);
        bytes32 id = channelId(key);
        uint256 amount = 0;
        if (signature.length != 0) {
            bytes4 err;
            (, err, amount,) =
                _claim(key.payer, key.payee, key.token, key.salt, cumulativeAmount, ledgerRoot, signature);
            // A final voucher that was already claimed is fine: closing is what the payee wants.
            if (err != NothingToClaim.selector) _revertWith(err, id);
        }
        Channel memory c = _live(id);
        _channels[id].closed = true;
        uint256 refund = c.deposit - c.claimed;
        emit Closed(id, key.payer, key.payee, c.claimed, refund, ledgerRoot);
        _pay(key.payee, key.token, amount);
        _pay(key.payer, key.token, refund);
    }

    // ---------------------------------------------------------------- anyone

    /// @notice Withdraw payouts that could not be pushed earlier, to `to` (for an account whose
    /// own address cannot receive, e.g. blocked by the token).
    function withdraw(address token, address to) external nonReentrant {
        if (to == address(0)) revert InvalidRecipient(to);
        uint256 amount = owed[msg.sender][token];
        if (amount == 0) revert NothingToWithdraw();
        owed[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, to, amount);
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert EthTransferFailed(to);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    // -------------------------------------------------------------- internal

    function _open(address payee, address token, uint96 salt, uint256 amount, uint32 expiry, uint24 window)
        private
        returns (bytes32 id)
    {
        if (payee == address(0) || payee == msg.sender) revert InvalidPayee(payee);
        if (expiry <= block.timestamp) revert InvalidExpiry(expiry);
        if (window < MIN_WINDOW || window > MAX_WINDOW) revert InvalidWindow(window);
        id = _channelId(msg.sender, payee, token, salt);
        if (_channels[id].expiry != 0) revert ChannelExists(id);
        uint256 received = _collect(token, amount);
        if (received > type(uint96).max) revert AmountTooLarge(received);
        _channels[id] = Channel(uint96(received), 0, expiry, window, false);
        emit ChannelOpened(id, msg.sender, payee, token, salt, received, expiry);
    }

    /// @dev Take `amount` from msg.sender; returns what actually arrived. For ETH the caller has
    /// already checked that msg.value is `amount`.
    function _collect(address token, uint256 amount) private returns (uint256 received) {
        if (amount == 0) revert InvalidAmount();
        if (token == address(0)) return amount;
        IERC20 erc20 = IERC20(token);
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransferFrom(msg.sender, address(this), amount);
        received = erc20.balanceOf(address(this)) - before;
        if (received == 0) revert InvalidAmount();
    }

    /// @dev Validate a voucher and record the claim; the caller emits and pays. Returns an error
    /// selector instead of reverting so `claimMany` can skip; writes nothing unless `err == 0`.
    function _claim(
        address payer,
        address payee,
        address token,
        uint96 salt,
        uint256 cumulativeAmount,
        bytes32 ledgerRoot,
        bytes calldata signature
    ) private returns (bytes32 id, bytes4 err, uint256 amount, uint256 claimed) {
        id = _channelId(payer, payee, token, salt);
        Channel memory c = _channels[id];
        if (c.expiry == 0) return (id, ChannelNotFound.selector, 0, 0);
        if (c.closed) return (id, ChannelFinal.selector, 0, 0);
        if (block.timestamp > c.expiry) return (id, ChannelExpired.selector, 0, 0);
        claimed = cumulativeAmount < c.deposit ? cumulativeAmount : c.deposit;
        if (claimed <= c.claimed) return (id, NothingToClaim.selector, 0, 0);
        (address signer, ECDSA.RecoverError recoverError,) =
            ECDSA.tryRecoverCalldata(voucherDigest(id, cumulativeAmount, ledgerRoot), signature);
        if (recoverError != ECDSA.RecoverError.NoError || signer != payer) {
            return (id, InvalidSignature.selector, 0, 0);
        }
        amount = claimed - c.claimed;
        _channels[id].claimed = uint96(claimed);
    }

    /// @dev Push a payout; if the recipient cannot take it, credit it for `withdraw` instead.
    function _pay(address to, address token, uint256 amount) private {
        if (amount == 0) return;
        bool ok;
        if (token == address(0)) {
            (ok,) = to.call{value: amount, gas: _PUSH_GAS}("");
        } else {
            ok = IERC20(token).trySafeTransfer(to, amount);
        }
        if (!ok) {
            owed[to][token] += amount;
            emit PayoutDeferred(to, token, amount);
        }
    }

    /// @dev keccak256(abi.encode(payer, payee, token, salt)).
    function _channelId(address payer, address payee, address token, uint96 salt) private pure returns (bytes32) {
        return _hashWords(
            bytes32(uint256(uint160(payer))), bytes32(uint256(uint160(payee))), bytes32(uint256(uint160(token))),
            bytes32(uint256(salt))
        );
    }

    /// @dev keccak256(abi.encode(a, b, c, d)) for four words, hashed in scratch memory past the
    /// free pointer without advancing it, so claimMany's loop allocates no memory.
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

    function _onlyPayer(ChannelKey calldata key) private view {
        if (msg.sender != key.payer) revert NotPayer(msg.sender);
    }

    /// @dev Turn a `_claim` error selector back into the matching revert.
    function _revertWith(bytes4 err, bytes32 id) private view {
        if (err == 0) return;
        if (err == ChannelNotFound.selector) revert ChannelNotFound(id);
        if (err == ChannelFinal.selector) revert ChannelFinal(id);
        if (err == ChannelExpired.selector) revert ChannelExpired(id, _channels[id].expiry);
        if (err == NothingToClaim.selector) revert NothingToClaim(id, _channels[id].claimed);
        revert InvalidSignature();
    }
}
