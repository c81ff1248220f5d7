// SPDX-License-Identifier: MIT
// Test-only tokens: a standard ERC-20 with ERC-2612 permit, and the misbehaving kinds an
// escrow must survive. None of this ships with micropay.
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// Standard token with permit; anyone may mint.
contract TestToken is ERC20, ERC20Permit {
    constructor() ERC20("Test USD", "TUSD") ERC20Permit("Test USD") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// Reverts every transfer to a blocked address (USDC-style blocklist).
contract BlockingToken is ERC20 {
    mapping(address => bool) public blocked;

    constructor() ERC20("Blocking", "BLK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setBlocked(address account, bool value) external {
        blocked[account] = value;
    }

    function _update(address from, address to, uint256 value) internal override {
        require(!blocked[to], "blocked");
        super._update(from, to, value);
    }
}

/// Burns 1% of every transfer, so the receiver gets less than was sent.
contract FeeOnTransferToken is ERC20 {
    constructor() ERC20("Fee", "FEE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = value / 100;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}

/// Calls a configured target during every transfer: a token that tries to re-enter.
contract ReentrantToken is ERC20 {
    address public hookTarget;
    bytes public hookData;
    bool public hookSucceeded;
    bytes public hookRevertData;

    constructor() ERC20("Reentrant", "REN") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setHook(address target, bytes calldata data) external {
        hookTarget = target;
        hookData = data;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        address target = hookTarget;
        if (target != address(0) && from != address(0)) {
            hookTarget = address(0); // once
            (bool ok, bytes memory ret) = target.call(hookData);
            hookSucceeded = ok;
            hookRevertData = ret;
        }
    }
}

/// Storage shared by the two hand-written non-standard tokens below.
abstract contract BareToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    mapping(address => bool) public blocked;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function setBlocked(address account, bool value) external {
        blocked[account] = value;
    }

    /// False instead of a revert when the transfer cannot happen.
    function _tryMove(address from, address to, uint256 amount) internal returns (bool) {
        if (blocked[to] || balanceOf[from] < amount) return false;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
        return true;
    }
}

/// USDT-style: transfer and transferFrom return nothing; failures revert.
contract NoReturnToken is BareToken {
    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
    }

    function transfer(address to, uint256 amount) external {
        require(_tryMove(msg.sender, to, amount), "transfer failed");
    }

    function transferFrom(address from, address to, uint256 amount) external {
        require(allowance[from][msg.sender] >= amount, "allowance");
        allowance[from][msg.sender] -= amount;
        require(_tryMove(from, to, amount), "transfer failed");
    }
}

/// Returns false instead of reverting when a transfer cannot happen.
contract FalseReturnToken is BareToken {
    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        return _tryMove(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        if (allowance[from][msg.sender] < amount || !_tryMove(from, to, amount)) return false;
        allowance[from][msg.sender] -= amount;
        return true;
    }
}
