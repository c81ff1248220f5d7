// SPDX-License-Identifier: MIT
// Test-only contract accounts that act as payer or payee and misbehave on receiving ETH.
pragma solidity 0.8.30;

/// A contract wallet: forwards any call, and receives ETH according to `mode`.
contract Actor {
    enum Mode {
        Accept,
        Revert,
        Reenter,
        BurnGas,
        RevertHuge
    }

    Mode public mode;
    address public hookTarget;
    bytes public hookData;
    bool public reentered;
    bool public reentrySucceeded;
    bytes public reentryRevertData;

    function setMode(Mode newMode) external {
        mode = newMode;
    }

    function setHook(address target, bytes calldata data) external {
        hookTarget = target;
        hookData = data;
    }

    function execute(address target, uint256 value, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    receive() external payable {
        if (mode == Mode.Revert) revert("no ETH please");
        if (mode == Mode.BurnGas) {
            while (true) {}
        }
        if (mode == Mode.RevertHuge) {
            // ~96 KB of revert data: a caller that copies it back pays for the memory (audit I-1).
            assembly {
                revert(0, 96000)
            }
        }
        if (mode == Mode.Reenter && !reentered) {
            reentered = true;
            (bool ok, bytes memory ret) = hookTarget.call(hookData);
            reentrySucceeded = ok;
            reentryRevertData = ret;
        }
    }
}

interface IVoucherDigest {
    function voucherDigest(bytes32 id, uint256 cumulativeAmount, bytes32 ledgerRoot) external view returns (bytes32);
}

/// Asks an escrow for many voucher digests in one call, so tests can compare thousands cheaply.
contract DigestProbe {
    function digests(IVoucherDigest escrow, bytes32[] calldata ids, uint256[] calldata amounts,
                     bytes32[] calldata roots) external view returns (bytes32[] memory out) {
        out = new bytes32[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            out[i] = escrow.voucherDigest(ids[i], amounts[i], roots[i]);
        }
    }
}

/// An EIP-1271 wallet whose owner's ECDSA signature over the digest is its signature: the
/// simplest smart-contract payer. It also forwards calls, so it can open and fund channels.
contract OwnerWallet {
    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function execute(address target, uint256 value, bytes calldata data) external payable returns (bytes memory) {
        require(msg.sender == owner, "not the owner");
        (bool ok, bytes memory ret) = target.call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) return 0xffffffff;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        return ecrecover(hash, v, r, s) == owner ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }

    receive() external payable {}
}

/// An EIP-1271 wallet that says yes to every digest and every signature.
contract YesWallet {
    function execute(address target, uint256 value, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call{value: value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    function isValidSignature(bytes32, bytes calldata) external pure returns (bytes4) {
        return 0x1626ba7e;
    }

    receive() external payable {}
}
