/*
 * hsm/pkcs11_min.h: the subset of the PKCS#11 v2.40 (Cryptoki) ABI that
 * kmsd uses, written from the OASIS specification for the Unix ABI
 * (CK_ULONG = unsigned long, default structure packing).
 *
 * Why not a system header: Debian installs none by default, and p11-kit's
 * pkcs11.h defines lower-case macros (value, count, params, ...) that
 * silently rename identifiers in any file including it. This file defines
 * only the spec names. CK_FUNCTION_LIST lists every entry point in spec
 * order (the layout must match); entry points kmsd does not call are
 * typed as a generic function pointer.
 *
 * Only hsm/ and the hsm unit tests include this file.
 */
#ifndef KMS_HSM_PKCS11_MIN_H
#define KMS_HSM_PKCS11_MIN_H

typedef unsigned char CK_BYTE;
typedef unsigned char CK_CHAR;
typedef unsigned char CK_UTF8CHAR;
typedef unsigned char CK_BBOOL;
typedef unsigned long CK_ULONG;
typedef long CK_LONG;
typedef CK_ULONG CK_FLAGS;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_ULONG CK_OBJECT_CLASS;
typedef CK_ULONG CK_KEY_TYPE;
typedef CK_ULONG CK_ATTRIBUTE_TYPE;
typedef CK_ULONG CK_MECHANISM_TYPE;
typedef CK_ULONG CK_USER_TYPE;
typedef CK_ULONG CK_STATE;
typedef CK_ULONG CK_NOTIFICATION;

#define CK_TRUE 1
#define CK_FALSE 0
#define CK_INVALID_HANDLE 0UL
#define CK_UNAVAILABLE_INFORMATION (~0UL)

typedef struct CK_VERSION {
    CK_BYTE major;
    CK_BYTE minor;
} CK_VERSION;

typedef struct CK_SLOT_INFO {
    CK_UTF8CHAR slotDescription[64];
    CK_UTF8CHAR manufacturerID[32];
    CK_FLAGS flags;
    CK_VERSION hardwareVersion;
    CK_VERSION firmwareVersion;
} CK_SLOT_INFO;

typedef struct CK_TOKEN_INFO {
    CK_UTF8CHAR label[32];
    CK_UTF8CHAR manufacturerID[32];
    CK_UTF8CHAR model[16];
    CK_CHAR serialNumber[16];
    CK_FLAGS flags;
    CK_ULONG ulMaxSessionCount;
    CK_ULONG ulSessionCount;
    CK_ULONG ulMaxRwSessionCount;
    CK_ULONG ulRwSessionCount;
    CK_ULONG ulMaxPinLen;
    CK_ULONG ulMinPinLen;
    CK_ULONG ulTotalPublicMemory;
    CK_ULONG ulFreePublicMemory;
    CK_ULONG ulTotalPrivateMemory;
    CK_ULONG ulFreePrivateMemory;
    CK_VERSION hardwareVersion;
    CK_VERSION firmwareVersion;
    CK_CHAR utcTime[16];
} CK_TOKEN_INFO;

typedef struct CK_SESSION_INFO {
    CK_SLOT_ID slotID;
    CK_STATE state;
    CK_FLAGS flags;
    CK_ULONG ulDeviceError;
} CK_SESSION_INFO;

typedef struct CK_ATTRIBUTE {
    CK_ATTRIBUTE_TYPE type;
    void *pValue;
    CK_ULONG ulValueLen;
} CK_ATTRIBUTE;

typedef struct CK_MECHANISM {
    CK_MECHANISM_TYPE mechanism;
    void *pParameter;
    CK_ULONG ulParameterLen;
} CK_MECHANISM;

typedef struct CK_MECHANISM_INFO {
    CK_ULONG ulMinKeySize;
    CK_ULONG ulMaxKeySize;
    CK_FLAGS flags;
} CK_MECHANISM_INFO;

typedef struct CK_GCM_PARAMS {
    CK_BYTE *pIv;
    CK_ULONG ulIvLen;
    CK_ULONG ulIvBits;
    CK_BYTE *pAAD;
    CK_ULONG ulAADLen;
    CK_ULONG ulTagBits;
} CK_GCM_PARAMS;

typedef struct CK_C_INITIALIZE_ARGS {
    void *CreateMutex;
    void *DestroyMutex;
    void *LockMutex;
    void *UnlockMutex;
    CK_FLAGS flags;
    void *pReserved;
} CK_C_INITIALIZE_ARGS;

/* Return values. */
#define CKR_OK 0x00UL
#define CKR_HOST_MEMORY 0x02UL
#define CKR_SLOT_ID_INVALID 0x03UL
#define CKR_GENERAL_ERROR 0x05UL
#define CKR_FUNCTION_FAILED 0x06UL
#define CKR_ARGUMENTS_BAD 0x07UL
#define CKR_CANT_LOCK 0x0AUL
#define CKR_ATTRIBUTE_SENSITIVE 0x11UL
#define CKR_ATTRIBUTE_TYPE_INVALID 0x12UL
#define CKR_ATTRIBUTE_VALUE_INVALID 0x13UL
#define CKR_DATA_LEN_RANGE 0x21UL
#define CKR_DEVICE_ERROR 0x30UL
#define CKR_DEVICE_MEMORY 0x31UL
#define CKR_DEVICE_REMOVED 0x32UL
#define CKR_ENCRYPTED_DATA_INVALID 0x40UL
#define CKR_ENCRYPTED_DATA_LEN_RANGE 0x41UL
#define CKR_FUNCTION_NOT_SUPPORTED 0x54UL
#define CKR_KEY_HANDLE_INVALID 0x60UL
#define CKR_KEY_SIZE_RANGE 0x62UL
#define CKR_KEY_TYPE_INCONSISTENT 0x63UL
#define CKR_KEY_FUNCTION_NOT_PERMITTED 0x68UL
#define CKR_KEY_UNEXTRACTABLE 0x6AUL
#define CKR_MECHANISM_INVALID 0x70UL
#define CKR_MECHANISM_PARAM_INVALID 0x71UL
#define CKR_OBJECT_HANDLE_INVALID 0x82UL
#define CKR_OPERATION_ACTIVE 0x90UL
#define CKR_OPERATION_NOT_INITIALIZED 0x91UL
#define CKR_PIN_INCORRECT 0xA0UL
#define CKR_PIN_INVALID 0xA1UL
#define CKR_PIN_LEN_RANGE 0xA2UL
#define CKR_PIN_EXPIRED 0xA3UL
#define CKR_PIN_LOCKED 0xA4UL
#define CKR_SESSION_CLOSED 0xB0UL
#define CKR_SESSION_COUNT 0xB1UL
#define CKR_SESSION_HANDLE_INVALID 0xB3UL
#define CKR_SESSION_READ_ONLY 0xB5UL
#define CKR_TEMPLATE_INCOMPLETE 0xD0UL
#define CKR_TEMPLATE_INCONSISTENT 0xD1UL
#define CKR_TOKEN_NOT_PRESENT 0xE0UL
#define CKR_TOKEN_NOT_RECOGNIZED 0xE1UL
#define CKR_TOKEN_WRITE_PROTECTED 0xE2UL
#define CKR_UNWRAPPING_KEY_HANDLE_INVALID 0xF0UL
#define CKR_USER_ALREADY_LOGGED_IN 0x100UL
#define CKR_USER_NOT_LOGGED_IN 0x101UL
#define CKR_USER_PIN_NOT_INITIALIZED 0x102UL
#define CKR_USER_TYPE_INVALID 0x103UL
#define CKR_WRAPPED_KEY_INVALID 0x110UL
#define CKR_WRAPPED_KEY_LEN_RANGE 0x112UL
#define CKR_WRAPPING_KEY_HANDLE_INVALID 0x113UL
#define CKR_BUFFER_TOO_SMALL 0x150UL
#define CKR_CRYPTOKI_NOT_INITIALIZED 0x190UL
#define CKR_CRYPTOKI_ALREADY_INITIALIZED 0x191UL

/* Flags. */
#define CKF_TOKEN_PRESENT 0x01UL          /* CK_SLOT_INFO */
#define CKF_RW_SESSION 0x02UL             /* C_OpenSession */
#define CKF_SERIAL_SESSION 0x04UL
#define CKF_OS_LOCKING_OK 0x02UL          /* CK_C_INITIALIZE_ARGS */
#define CKF_USER_PIN_INITIALIZED 0x08UL   /* CK_TOKEN_INFO */
#define CKF_TOKEN_INITIALIZED 0x400UL
#define CKF_ENCRYPT 0x100UL               /* CK_MECHANISM_INFO */
#define CKF_DECRYPT 0x200UL
#define CKF_GENERATE 0x8000UL
#define CKF_WRAP 0x20000UL
#define CKF_UNWRAP 0x40000UL

#define CKU_SO 0UL
#define CKU_USER 1UL

#define CKO_SECRET_KEY 0x04UL
#define CKK_AES 0x1FUL

#define CKA_CLASS 0x000UL
#define CKA_TOKEN 0x001UL
#define CKA_PRIVATE 0x002UL
#define CKA_LABEL 0x003UL
#define CKA_VALUE 0x011UL
#define CKA_KEY_TYPE 0x100UL
#define CKA_ID 0x102UL
#define CKA_SENSITIVE 0x103UL
#define CKA_ENCRYPT 0x104UL
#define CKA_DECRYPT 0x105UL
#define CKA_WRAP 0x106UL
#define CKA_UNWRAP 0x107UL
#define CKA_SIGN 0x108UL
#define CKA_VERIFY 0x10AUL
#define CKA_DERIVE 0x10CUL
#define CKA_VALUE_LEN 0x161UL
#define CKA_EXTRACTABLE 0x162UL
#define CKA_LOCAL 0x163UL
#define CKA_NEVER_EXTRACTABLE 0x164UL
#define CKA_ALWAYS_SENSITIVE 0x165UL
#define CKA_MODIFIABLE 0x170UL

#define CKM_AES_KEY_GEN 0x1080UL
#define CKM_AES_GCM 0x1087UL
#define CKM_AES_KEY_WRAP 0x2109UL
#define CKM_AES_KEY_WRAP_PAD 0x210AUL

/* Entry points kmsd calls, with their spec prototypes. */
typedef CK_RV (*CK_C_Initialize)(void *pInitArgs);
typedef CK_RV (*CK_C_Finalize)(void *pReserved);
typedef CK_RV (*CK_C_GetSlotList)(CK_BBOOL tokenPresent, CK_SLOT_ID *pSlotList, CK_ULONG *pulCount);
typedef CK_RV (*CK_C_GetSlotInfo)(CK_SLOT_ID slotID, CK_SLOT_INFO *pInfo);
typedef CK_RV (*CK_C_GetTokenInfo)(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo);
typedef CK_RV (*CK_C_GetMechanismInfo)(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                                       CK_MECHANISM_INFO *pInfo);
typedef CK_RV (*CK_C_SetPIN)(CK_SESSION_HANDLE hSession, CK_UTF8CHAR *pOldPin, CK_ULONG ulOldLen,
                             CK_UTF8CHAR *pNewPin, CK_ULONG ulNewLen);
typedef CK_RV (*CK_C_OpenSession)(CK_SLOT_ID slotID, CK_FLAGS flags, void *pApplication,
                                  void *Notify, CK_SESSION_HANDLE *phSession);
typedef CK_RV (*CK_C_CloseSession)(CK_SESSION_HANDLE hSession);
typedef CK_RV (*CK_C_CloseAllSessions)(CK_SLOT_ID slotID);
typedef CK_RV (*CK_C_GetSessionInfo)(CK_SESSION_HANDLE hSession, CK_SESSION_INFO *pInfo);
typedef CK_RV (*CK_C_Login)(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                            CK_UTF8CHAR *pPin, CK_ULONG ulPinLen);
typedef CK_RV (*CK_C_Logout)(CK_SESSION_HANDLE hSession);
typedef CK_RV (*CK_C_CreateObject)(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE *pTemplate,
                                   CK_ULONG ulCount, CK_OBJECT_HANDLE *phObject);
typedef CK_RV (*CK_C_DestroyObject)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject);
typedef CK_RV (*CK_C_GetAttributeValue)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                                        CK_ATTRIBUTE *pTemplate, CK_ULONG ulCount);
typedef CK_RV (*CK_C_FindObjectsInit)(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE *pTemplate,
                                      CK_ULONG ulCount);
typedef CK_RV (*CK_C_FindObjects)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE *phObject,
                                  CK_ULONG ulMaxObjectCount, CK_ULONG *pulObjectCount);
typedef CK_RV (*CK_C_FindObjectsFinal)(CK_SESSION_HANDLE hSession);
typedef CK_RV (*CK_C_EncryptInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM *pMechanism,
                                  CK_OBJECT_HANDLE hKey);
typedef CK_RV (*CK_C_Encrypt)(CK_SESSION_HANDLE hSession, CK_BYTE *pData, CK_ULONG ulDataLen,
                              CK_BYTE *pEncryptedData, CK_ULONG *pulEncryptedDataLen);
typedef CK_RV (*CK_C_DecryptInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM *pMechanism,
                                  CK_OBJECT_HANDLE hKey);
typedef CK_RV (*CK_C_Decrypt)(CK_SESSION_HANDLE hSession, CK_BYTE *pEncryptedData,
                              CK_ULONG ulEncryptedDataLen, CK_BYTE *pData, CK_ULONG *pulDataLen);
typedef CK_RV (*CK_C_GenerateKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM *pMechanism,
                                  CK_ATTRIBUTE *pTemplate, CK_ULONG ulCount,
                                  CK_OBJECT_HANDLE *phKey);
typedef CK_RV (*CK_C_WrapKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM *pMechanism,
                              CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey,
                              CK_BYTE *pWrappedKey, CK_ULONG *pulWrappedKeyLen);
typedef CK_RV (*CK_C_UnwrapKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM *pMechanism,
                                CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE *pWrappedKey,
                                CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE *pTemplate,
                                CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE *phKey);
typedef CK_RV (*CK_C_Unused)(void); /* never called through this type */

typedef struct CK_FUNCTION_LIST {
    CK_VERSION version;
    CK_C_Initialize C_Initialize;
    CK_C_Finalize C_Finalize;
    CK_C_Unused C_GetInfo;
    CK_C_Unused C_GetFunctionList;
    CK_C_GetSlotList C_GetSlotList;
    CK_C_GetSlotInfo C_GetSlotInfo;
    CK_C_GetTokenInfo C_GetTokenInfo;
    CK_C_Unused C_GetMechanismList;
    CK_C_GetMechanismInfo C_GetMechanismInfo;
    CK_C_Unused C_InitToken;
    CK_C_Unused C_InitPIN;
    CK_C_SetPIN C_SetPIN; /* used by the tests */
    CK_C_OpenSession C_OpenSession;
    CK_C_CloseSession C_CloseSession;
    CK_C_CloseAllSessions C_CloseAllSessions; /* used by the tests */
    CK_C_GetSessionInfo C_GetSessionInfo;
    CK_C_Unused C_GetOperationState;
    CK_C_Unused C_SetOperationState;
    CK_C_Login C_Login;
    CK_C_Logout C_Logout;
    CK_C_CreateObject C_CreateObject;
    CK_C_Unused C_CopyObject;
    CK_C_DestroyObject C_DestroyObject;
    CK_C_Unused C_GetObjectSize;
    CK_C_GetAttributeValue C_GetAttributeValue;
    CK_C_Unused C_SetAttributeValue;
    CK_C_FindObjectsInit C_FindObjectsInit;
    CK_C_FindObjects C_FindObjects;
    CK_C_FindObjectsFinal C_FindObjectsFinal;
    CK_C_EncryptInit C_EncryptInit;
    CK_C_Encrypt C_Encrypt;
    CK_C_Unused C_EncryptUpdate;
    CK_C_Unused C_EncryptFinal;
    CK_C_DecryptInit C_DecryptInit;
    CK_C_Decrypt C_Decrypt;
    CK_C_Unused C_DecryptUpdate;
    CK_C_Unused C_DecryptFinal;
    CK_C_Unused C_DigestInit;
    CK_C_Unused C_Digest;
    CK_C_Unused C_DigestUpdate;
    CK_C_Unused C_DigestKey;
    CK_C_Unused C_DigestFinal;
    CK_C_Unused C_SignInit;
    CK_C_Unused C_Sign;
    CK_C_Unused C_SignUpdate;
    CK_C_Unused C_SignFinal;
    CK_C_Unused C_SignRecoverInit;
    CK_C_Unused C_SignRecover;
    CK_C_Unused C_VerifyInit;
    CK_C_Unused C_Verify;
    CK_C_Unused C_VerifyUpdate;
    CK_C_Unused C_VerifyFinal;
    CK_C_Unused C_VerifyRecoverInit;
    CK_C_Unused C_VerifyRecover;
    CK_C_Unused C_DigestEncryptUpdate;
    CK_C_Unused C_DecryptDigestUpdate;
    CK_C_Unused C_SignEncryptUpdate;
    CK_C_Unused C_DecryptVerifyUpdate;
    CK_C_GenerateKey C_GenerateKey;
    CK_C_Unused C_GenerateKeyPair;
    CK_C_WrapKey C_WrapKey;
    CK_C_UnwrapKey C_UnwrapKey;
    CK_C_Unused C_DeriveKey;
    CK_C_Unused C_SeedRandom;
    CK_C_Unused C_GenerateRandom;
    CK_C_Unused C_GetFunctionStatus;
    CK_C_Unused C_CancelFunction;
    CK_C_Unused C_WaitForSlotEvent;
} CK_FUNCTION_LIST;

typedef CK_RV (*CK_C_GetFunctionList)(CK_FUNCTION_LIST **ppFunctionList);

#endif /* KMS_HSM_PKCS11_MIN_H */
